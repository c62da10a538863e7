package webtier

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/facefleet/facefleet/internal/apikeys"
)

// AuthOptions say who may call what. Routes that change or reveal the gallery
// (enroll, delete, list subjects) always need an admin key; recognition is open
// unless RecognizeNeedsKey, and the course contract `POST /` unless
// CourseNeedsKey. A key sent to an open route is still checked (a bad one is a
// 401) and counts against its own rate limit.
type AuthOptions struct {
	// Keys checks API keys. Default: an apikeys.Store over the Outputs store
	// (where `facefleet keys create` writes) with KeyCacheTTL.
	Keys *apikeys.Store
	// KeyCacheTTL bounds how long a revoked key keeps working here (default 5 s).
	KeyCacheTTL time.Duration
	// RecognizeNeedsKey locks POST /v1/recognize to recognize or admin keys.
	RecognizeNeedsKey bool
	// CourseNeedsKey locks the course contract POST / the same way.
	CourseNeedsKey bool
	// KeyRate (requests per second) and KeyBurst are each key's token bucket,
	// unless its record sets its own. Defaults 100 and 200; a negative KeyRate
	// is unlimited.
	KeyRate  float64
	KeyBurst int
	// AnonRate and AnonBurst limit requests without a key, per client address,
	// on the open routes. 0 (the default): unlimited, because the course's
	// workload generator sends 1000 uploads at once from one address.
	AnonRate  float64
	AnonBurst int
	// BadKeyRate and BadKeyBurst limit rejected keys per client address:
	// beyond the burst, that address gets 429 for any key before the store is
	// read (so made-up keys cannot turn into store reads at line rate).
	// Defaults 1 per second, burst 20.
	BadKeyRate  float64
	BadKeyBurst int
}

func (a *AuthOptions) defaults(o *Options) {
	if a.KeyRate == 0 {
		a.KeyRate = 100
	}
	if a.KeyBurst <= 0 {
		a.KeyBurst = 200
	}
	if a.AnonBurst <= 0 {
		a.AnonBurst = max(1, int(2*a.AnonRate))
	}
	if a.BadKeyRate <= 0 {
		a.BadKeyRate = 1
	}
	if a.BadKeyBurst <= 0 {
		a.BadKeyBurst = 20
	}
	if a.Keys == nil {
		a.Keys = apikeys.NewStore(o.Outputs, apikeys.Options{CacheTTL: a.KeyCacheTTL})
	}
}

// auth is the web tier's key checking and rate limiting.
type auth struct {
	o       AuthOptions
	limiter *apikeys.Limiter
}

func newAuth(o *Options) *auth {
	o.Auth.defaults(o)
	return &auth{o: o.Auth, limiter: apikeys.NewLimiter(0, nil)}
}

// securityHeaders is set on every answer: no answer may be sniffed into another
// type (an error message quoting a file name must stay text), none framed.
func (s *Server) securityHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	return c.Next()
}

// presentedKey reads the key from Authorization: Bearer or X-API-Key ("" when
// neither is sent).
func presentedKey(c *fiber.Ctx) (string, error) {
	var bearer string
	if h := strings.TrimSpace(c.Get(fiber.HeaderAuthorization)); h != "" {
		scheme, rest, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", unauthorized(c, "bad_credentials", "the Authorization header must be \"Bearer <API key>\"", true)
		}
		bearer = strings.TrimSpace(rest)
	}
	xkey := strings.TrimSpace(c.Get("X-API-Key"))
	if bearer != "" && xkey != "" && bearer != xkey {
		return "", unauthorized(c, "bad_credentials", "Authorization and X-API-Key carry different keys; send one", true)
	}
	if bearer != "" {
		return bearer, nil
	}
	return xkey, nil
}

// unauthorized is a 401 with the challenge RFC 6750 asks for.
func unauthorized(c *fiber.Ctx, code, msg string, invalid bool) error {
	ch := `Bearer realm="facefleet"`
	if invalid {
		ch += `, error="invalid_token"`
	}
	c.Set(fiber.HeaderWWWAuthenticate, ch)
	return errf(fiber.StatusUnauthorized, code, "%s", msg)
}

// guard admits a request to a route that needs role need. keyRequired says
// whether a caller without a key is turned away (401) or let through as
// anonymous (rate-limited per client address).
func (s *Server) guard(need apikeys.Role, keyRequired bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		a := s.auth
		key, err := presentedKey(c)
		if err != nil {
			return err
		}
		if key == "" {
			if keyRequired {
				return unauthorized(c, "key_required", "this route needs an API key with role "+string(need)+
					": send \"Authorization: Bearer <key>\" or \"X-API-Key: <key>\" (`facefleet keys create` makes one)", false)
			}
			if ok, wait := a.limiter.Allow("addr:"+c.IP(), a.o.AnonRate, a.o.AnonBurst); !ok {
				return tooMany(wait, "requests without an API key from "+c.IP())
			}
			return c.Next()
		}
		bad := "badkey:" + c.IP()
		if empty, wait := a.limiter.Empty(bad); empty {
			return tooMany(wait, "rejected API keys from "+c.IP())
		}
		rec, err := a.o.Keys.Authenticate(c.UserContext(), key)
		switch {
		case errors.Is(err, apikeys.ErrInvalidKey):
			a.limiter.Allow(bad, a.o.BadKeyRate, a.o.BadKeyBurst)
			s.log.Info("rejected an API key", "path", c.Path(), "remote", c.IP(), "why", err)
			return unauthorized(c, "invalid_key", "the API key is not valid (malformed, unknown or revoked)", true)
		case err != nil:
			return errf(fiber.StatusServiceUnavailable, "store_unavailable", "cannot check the API key: %v", err)
		case !rec.Role.Permits(need):
			return errf(fiber.StatusForbidden, "forbidden", "this route needs a key with role %s; key %s has role %s", need, rec.ID, rec.Role)
		}
		rate, burst := a.o.KeyRate, a.o.KeyBurst
		if rec.Rate > 0 {
			rate, burst = rec.Rate, max(rec.Burst, 1)
		}
		if ok, wait := a.limiter.Allow("key:"+rec.ID, rate, burst); !ok {
			return tooMany(wait, "key "+rec.ID)
		}
		c.Locals(localsKeyID, rec.ID)
		return c.Next()
	}
}

const localsKeyID = "facefleet.key_id"

// admin guards the routes that change or reveal the gallery.
func (s *Server) admin() fiber.Handler { return s.guard(apikeys.Admin, true) }

func tooMany(wait time.Duration, who string) error {
	he := errf(fiber.StatusTooManyRequests, "rate_limited", "rate limit reached for %s; retry in %s", who,
		strconv.FormatFloat(wait.Seconds(), 'f', 3, 64)+"s")
	he.retryAfter = max(wait, time.Second)
	return he
}
