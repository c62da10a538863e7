package service_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/enginetest"
	"github.com/facefleet/facefleet/internal/service"
	"github.com/facefleet/facefleet/internal/settings"
	"github.com/facefleet/facefleet/test/e2ekit"
)

func TestNewAndSeedGallery(t *testing.T) {
	if _, err := service.New(service.Config{DataDir: t.TempDir()}); err == nil {
		t.Fatal("New without an engine succeeded")
	}
	if _, err := service.New(service.Config{Analyzer: enginetest.New()}); err == nil {
		t.Fatal("New without a data folder succeeded")
	}
	svc, err := service.New(service.Config{DataDir: t.TempDir(), Analyzer: enginetest.New(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := svc.SeedGallery(ctx, []byte(`{"not":"a gallery"}`)); err == nil {
		t.Fatal("seeded a file that is not a gallery")
	}
	g := gallery.New()
	d := make([]float32, gallery.DescriptorLen)
	d[0] = 1
	if err := g.Add("amy", d); err != nil {
		t.Fatal(err)
	}
	data, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.SeedGallery(ctx, data); err != nil {
		t.Fatal(err)
	}
	if got, _ := svc.Gallery.Gallery().Marshal(); string(got) != string(data) {
		t.Fatalf("stored gallery %s, want %s", got, data)
	}

	// A second seed replaces amy and adds bob; penny, enrolled since (through the
	// API), stays.
	penny := gallery.New()
	if err := penny.Add("penny", d); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Gallery.Apply(ctx, gallery.Edit{Op: gallery.OpAdd, Faces: penny}); err != nil {
		t.Fatal(err)
	}
	seed2 := gallery.New()
	d2 := make([]float32, gallery.DescriptorLen)
	d2[1] = 1
	if err := seed2.Add("amy", d2); err != nil {
		t.Fatal(err)
	}
	if err := seed2.Add("bob", d2); err != nil {
		t.Fatal(err)
	}
	data2, _ := seed2.Marshal()
	if err := svc.SeedGallery(ctx, data2); err != nil {
		t.Fatal(err)
	}
	// What a fresh process reads from the store, not this one's memory.
	reader, err := gallery.OpenStore(ctx, svc.Outputs, service.GalleryPrefix, gallery.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	merged := reader.Gallery()
	var names []string
	for _, s := range merged.Subjects() {
		names = append(names, s.Name)
		if s.Name == "amy" && (len(s.Descriptors) != 1 || s.Descriptors[0][1] != 1) {
			t.Fatalf("amy not replaced by the seed: %v", s.Descriptors)
		}
	}
	if fmt.Sprint(names) != "[amy bob penny]" {
		t.Fatalf("merged subjects %v, want [amy bob penny]", names)
	}
}

// The settings reach both tiers the same way whichever command reads them.
func TestTiersFromSettings(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	aws := map[string]string{"FACEFLEET_REQUEST_QUEUE_URL": "http://q/1", "FACEFLEET_RESPONSE_QUEUE_URL": "http://q/2",
		"FACEFLEET_INPUT_BUCKET": "in", "FACEFLEET_OUTPUT_BUCKET": "out", "FACEFLEET_MAX_BODY": "2048",
		"FACEFLEET_MAX_PIXELS": "1000", "FACEFLEET_IDLE_TIMEOUT": "0s", "FACEFLEET_GALLERY_PREFIX": "g/k/"}
	up, err := settings.FromEnv(settings.Up, env(aws))
	if err != nil {
		t.Fatal(err)
	}
	web, err := settings.FromEnv(settings.Webtier, env(aws))
	if err != nil {
		t.Fatal(err)
	}
	app, err := settings.FromEnv(settings.Apptier, env(aws))
	if err != nil {
		t.Fatal(err)
	}
	tu, tw, ta := service.TiersFromSettings(up), service.TiersFromSettings(web), service.TiersFromSettings(app)
	if tu.Limits != tw.Limits || tw.Limits.MaxBodyBytes != 2048 || tw.Limits.MaxPixels != 1000 || ta.Limits.MaxPixels != 1000 {
		t.Errorf("limits: up %+v, webtier %+v, apptier %+v", tu.Limits, tw.Limits, ta.Limits)
	}
	if tu.GalleryPrefix != service.GalleryPrefix || tw.GalleryPrefix != "g/k/" || ta.GalleryPrefix != "g/k/" {
		t.Errorf("gallery prefixes %q %q %q", tu.GalleryPrefix, tw.GalleryPrefix, ta.GalleryPrefix)
	}
	if ta.IdleTimeout != 0 || ta.WorkerWait != 5*time.Second || tw.PollWait != 10*time.Second || ta.Threshold != 0.6 {
		t.Errorf("apptier %+v, webtier poll %s", ta, tw.PollWait)
	}
	if ta.MaxTails != 4 || tu.MaxTails != 4 || tw.MaxTails != 0 {
		t.Errorf("max tails: apptier %d, up %d, webtier %d; want 4, 4 and unset", ta.MaxTails, tu.MaxTails, tw.MaxTails)
	}
}

// The access settings reach the web tier: 0 rate and 0 TTL mean unlimited and
// uncached (negative in webtier.AuthOptions, where 0 is "default").
func TestAuthFromSettings(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	def, err := settings.FromEnv(settings.Up, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	a := service.TiersFromSettings(def).Auth
	if a.RecognizeNeedsKey || a.CourseNeedsKey || a.KeyRate != 100 || a.KeyBurst != 200 || a.AnonRate != 0 || a.KeyCacheTTL != 5*time.Second {
		t.Errorf("defaults: %+v", a)
	}
	set, err := settings.FromEnv(settings.Webtier, env(map[string]string{"FACEFLEET_REQUEST_QUEUE_URL": "http://q/1",
		"FACEFLEET_RESPONSE_QUEUE_URL": "http://q/2", "FACEFLEET_INPUT_BUCKET": "in", "FACEFLEET_OUTPUT_BUCKET": "out",
		"FACEFLEET_RECOGNIZE_NEEDS_KEY": "true", "FACEFLEET_COURSE_NEEDS_KEY": "1", "FACEFLEET_KEY_RATE": "0",
		"FACEFLEET_ANON_RATE": "3", "FACEFLEET_ANON_BURST": "7", "FACEFLEET_KEY_CACHE_TTL": "0s"}))
	if err != nil {
		t.Fatal(err)
	}
	a = service.TiersFromSettings(set).Auth
	if !a.RecognizeNeedsKey || !a.CourseNeedsKey || a.KeyRate >= 0 || a.AnonRate != 3 || a.AnonBurst != 7 || a.KeyCacheTTL >= 0 {
		t.Errorf("set: %+v", a)
	}
	if _, err := settings.FromEnv(settings.Up, env(map[string]string{"FACEFLEET_KEY_RATE": "-1"})); err == nil {
		t.Error("a negative key rate was accepted")
	}
}

// The output store's write-ahead log holds the data folder: a second service
// on it is refused with a clear error while the first runs, and the folder is
// free again (nothing left to replay) once the first has served and stopped.
func TestOneServicePerDataFolder(t *testing.T) {
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := service.New(service.Config{DataDir: dir, Analyzer: enginetest.New(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := service.New(service.Config{DataDir: dir, Analyzer: enginetest.New(), Logger: quiet}); err == nil || !strings.Contains(err.Error(), "held by another store") {
		t.Fatalf("second service on one data folder: %v", err)
	}
	// Without the log (-output-log=false) the folder may be shared.
	other, err := service.New(service.Config{DataDir: dir, NoOutputLog: true, Analyzer: enginetest.New(), Logger: quiet})
	if err != nil {
		t.Fatalf("a service without the output log: %v", err)
	}
	_, stop := e2ekit.Serve(t, svc)
	time.Sleep(50 * time.Millisecond)
	stop()
	if segs, _ := filepath.Glob(filepath.Join(dir, "outputs", ".wal", "seg-*")); len(segs) != 0 {
		t.Errorf("log segments left after a clean stop: %v", segs)
	}
	if _, err := service.New(service.Config{DataDir: dir, Analyzer: enginetest.New(), Logger: quiet}); err != nil {
		t.Fatalf("a service after the first stopped: %v", err)
	}
	_ = other
}
