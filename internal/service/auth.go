package service

import (
	"github.com/facefleet/facefleet/internal/settings"
	"github.com/facefleet/facefleet/webtier"
)

// authFromSettings maps the access settings onto the web tier's AuthOptions,
// where zero means "default": a 0 rate or cache TTL in the settings means
// unlimited / no cache, so it becomes negative here.
func authFromSettings(v *settings.Values) webtier.AuthOptions {
	a := webtier.AuthOptions{
		RecognizeNeedsKey: v.Bool(settings.RecognizeNeedsKey), CourseNeedsKey: v.Bool(settings.CourseNeedsKey),
		KeyRate: v.Float(settings.KeyRate), KeyBurst: v.Int(settings.KeyBurst),
		AnonRate: v.Float(settings.AnonRate), AnonBurst: v.Int(settings.AnonBurst),
		KeyCacheTTL: v.Duration(settings.KeyCacheTTL),
	}
	if a.KeyRate == 0 {
		a.KeyRate = -1
	}
	if a.KeyCacheTTL == 0 {
		a.KeyCacheTTL = -1
	}
	return a
}
