package webtier_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/apikeys"
	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/blob/memblob"
	"github.com/facefleet/facefleet/webtier"
)

// call sends a request with the given headers; field "-" sends no body.
func (e *env) call(method, path, field, filename string, data []byte, hdr map[string]string) (int, string, http.Header) {
	e.t.Helper()
	var req *http.Request
	if field == "-" {
		req, _ = http.NewRequest(method, e.url+path, nil)
	} else {
		body, ct := multipartBody(e.t, field, filename, data)
		req, _ = http.NewRequest(method, e.url+path, body)
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

func bearer(k string) map[string]string { return map[string]string{"Authorization": "Bearer " + k} }

func (e *env) newKey(role apikeys.Role, rate float64, burst int) (string, string) {
	e.t.Helper()
	k, rec, err := apikeys.NewStore(e.out, apikeys.Options{}).Create(context.Background(), role, "", rate, burst)
	if err != nil {
		e.t.Fatal(err)
	}
	return k, rec.ID
}

// apiError decodes the /v1 error shape.
func apiError(t *testing.T, body string) string {
	t.Helper()
	var v struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.Error.Code == "" || v.Error.Message == "" {
		t.Fatalf("not the API's error shape: %q (%v)", body, err)
	}
	return v.Error.Code
}

func TestAdminRoutesNeedAnAdminKey(t *testing.T) {
	e := newEnv(t, webtier.Limits{})
	admin, _ := e.newKey(apikeys.Admin, 0, 0)
	rec, _ := e.newKey(apikeys.Recognize, 0, 0)
	img := pngBytes(t, 8, 8)
	for _, c := range []struct {
		name   string
		hdr    map[string]string
		status int
		code   string
	}{
		{"no key", nil, 401, "key_required"},
		{"recognize key", bearer(rec), 403, "forbidden"},
		{"made-up key", bearer("ffk_0123456789abcdef_" + strings.Repeat("A", 43)), 401, "invalid_key"},
		{"garbage", map[string]string{"X-API-Key": "letmein"}, 401, "invalid_key"},
		{"wrong secret", bearer(admin[:len(admin)-2] + "AA"), 401, "invalid_key"},
		{"basic auth", map[string]string{"Authorization": "Basic YWRtaW46YWRtaW4="}, 401, "bad_credentials"},
		{"two different keys", map[string]string{"Authorization": "Bearer " + admin, "X-API-Key": rec}, 401, "bad_credentials"},
	} {
		for _, r := range []struct{ method, path, field string }{
			{"PUT", "/v1/subjects/amy/faces", "image"}, {"POST", "/v1/subjects/amy/faces", "image"},
			{"GET", "/v1/subjects", "-"}, {"DELETE", "/v1/subjects/amy", "-"},
		} {
			status, body, h := e.call(r.method, r.path, r.field, "a.png", img, c.hdr)
			if status != c.status || apiError(t, body) != c.code {
				t.Errorf("%s: %s %s = %d %s, want %d %s", c.name, r.method, r.path, status, body, c.status, c.code)
			}
			if status == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), `Bearer realm="facefleet"`) {
				t.Errorf("%s: 401 without a Bearer challenge: %q", c.name, h.Get("WWW-Authenticate"))
			}
		}
	}
	if g := e.storedGallery(); g.Len() != 0 {
		t.Fatalf("a refused request changed the gallery: %v", g.Names())
	}
	// The admin key works in either header, and the stranger's attempts left
	// nothing behind.
	if code, body, _ := e.call("PUT", "/v1/subjects/amy/faces", "image", "a.png", img, bearer(admin)); code != 201 {
		t.Fatalf("admin Bearer: %d %s", code, body)
	}
	if code, body, _ := e.call("POST", "/v1/subjects/amy/faces", "image", "a.png", img, map[string]string{"X-API-Key": admin}); code != 201 {
		t.Fatalf("admin X-API-Key: %d %s", code, body)
	}
	both := map[string]string{"Authorization": "bearer " + admin, "X-API-Key": admin}
	if code, body, _ := e.call("GET", "/v1/subjects", "-", "", nil, both); code != 200 || body != `{"subjects":[{"name":"amy","faces":2}]}` {
		t.Fatalf("admin list: %d %s", code, body)
	}
	if code, _, _ := e.call("DELETE", "/v1/subjects/amy", "-", "", nil, bearer(admin)); code != 204 {
		t.Fatalf("admin delete: %d", code)
	}
}

func TestRecognitionOpenByDefaultAndLockable(t *testing.T) {
	img := pngBytes(t, 8, 8)
	open := newEnv(t, webtier.Limits{})
	if code, body, _ := open.call("POST", "/", "inputFile", "amy_1.png", img, nil); code != 200 || body != "amy_1:amy" {
		t.Fatalf("course contract without a key: %d %q", code, body)
	}
	if code, body, _ := open.call("POST", "/v1/recognize", "image", "amy_2.png", img, nil); code != 200 {
		t.Fatalf("recognize without a key: %d %s", code, body)
	}
	// A key sent to an open route is still checked: a bad one is refused.
	code, body, _ := open.call("POST", "/", "inputFile", "amy_3.png", img, bearer("nope"))
	if code != 401 || !strings.Contains(body, "not valid") || strings.HasPrefix(body, "{") {
		t.Fatalf("course contract with a bad key: %d %q (plain text expected)", code, body)
	}

	locked := newEnvAuth(t, webtier.Limits{}, webtier.AuthOptions{RecognizeNeedsKey: true, CourseNeedsKey: true})
	rec, _ := locked.newKey(apikeys.Recognize, 0, 0)
	if code, body, _ := locked.call("POST", "/v1/recognize", "image", "amy_4.png", img, nil); code != 401 || apiError(t, body) != "key_required" {
		t.Fatalf("locked recognize without a key: %d %s", code, body)
	}
	if code, body, _ := locked.call("POST", "/", "inputFile", "amy_5.png", img, nil); code != 401 || !strings.Contains(body, "needs an API key") {
		t.Fatalf("locked course contract without a key: %d %q", code, body)
	}
	for _, k := range []string{rec, locked.adminKey} {
		if code, body, _ := locked.call("POST", "/v1/recognize", "image", "amy_6.png", img, map[string]string{"X-API-Key": k}); code != 200 {
			t.Fatalf("locked recognize with a key: %d %s", code, body)
		}
		if code, body, _ := locked.call("POST", "/", "inputFile", "amy_7.png", img, bearer(k)); code != 200 || body != "amy_7:amy" {
			t.Fatalf("locked course contract with a key: %d %q", code, body)
		}
	}
}

func TestRevokedKeyStopsWorkingWithinTheCacheTTL(t *testing.T) {
	e := newEnvAuth(t, webtier.Limits{}, webtier.AuthOptions{KeyCacheTTL: 300 * time.Millisecond})
	k, id := e.newKey(apikeys.Admin, 0, 0)
	if code, _, _ := e.call("GET", "/v1/subjects", "-", "", nil, bearer(k)); code != 200 {
		t.Fatalf("fresh key: %d", code)
	}
	if err := apikeys.NewStore(e.out, apikeys.Options{}).Revoke(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	for {
		code, body, _ := e.call("GET", "/v1/subjects", "-", "", nil, bearer(k))
		if code == 401 {
			if apiError(t, body) != "invalid_key" {
				t.Fatalf("revoked: %s", body)
			}
			break
		}
		if time.Since(revoked) > 2*time.Second {
			t.Fatalf("revoked key still accepted after %v (TTL 300ms): %d", time.Since(revoked), code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRateLimits(t *testing.T) {
	e := newEnvAuth(t, webtier.Limits{}, webtier.AuthOptions{KeyRate: 0.5, KeyBurst: 2, AnonRate: 0.5, AnonBurst: 1})
	slow, _ := e.newKey(apikeys.Recognize, 0, 0)       // the server's default: 2 at once, then one per 2 s
	fast, _ := e.newKey(apikeys.Recognize, 1000, 1000) // its own, larger limit
	img := pngBytes(t, 8, 8)
	for i := range 2 {
		if code, body, _ := e.call("POST", "/v1/recognize", "image", "amy_1.png", img, bearer(slow)); code != 200 {
			t.Fatalf("request %d within the burst: %d %s", i, code, body)
		}
	}
	code, body, h := e.call("POST", "/v1/recognize", "image", "amy_1.png", img, bearer(slow))
	if code != 429 || apiError(t, body) != "rate_limited" || h.Get("Retry-After") != "2" {
		t.Fatalf("over the limit: %d %s Retry-After %q", code, body, h.Get("Retry-After"))
	}
	for i := range 5 {
		if code, body, _ := e.call("POST", "/v1/recognize", "image", "amy_1.png", img, bearer(fast)); code != 200 {
			t.Fatalf("another key's request %d: %d %s", i, code, body)
		}
	}
	// Requests without a key share their address's bucket.
	if code, body, _ := e.call("POST", "/", "inputFile", "amy_1.png", img, nil); code != 200 {
		t.Fatalf("first anonymous: %d %s", code, body)
	}
	if code, body, h := e.call("POST", "/", "inputFile", "amy_1.png", img, nil); code != 429 || h.Get("Retry-After") == "" || !strings.Contains(body, "rate limit") {
		t.Fatalf("second anonymous: %d %q %v", code, body, h)
	}
}

// down is a store whose reads fail.
type down struct{ blob.Store }

func (down) Get(context.Context, string) ([]byte, blob.Attributes, error) {
	return nil, blob.Attributes{}, errors.New("connection refused")
}

func TestKeyStoreOutageIs503(t *testing.T) {
	b := memblob.New()
	k, _, err := apikeys.NewStore(b, apikeys.Options{}).Create(context.Background(), apikeys.Admin, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvAuth(t, webtier.Limits{}, webtier.AuthOptions{Keys: apikeys.NewStore(down{b}, apikeys.Options{})})
	if code, body, _ := e.call("GET", "/v1/subjects", "-", "", nil, bearer(k)); code != 503 || apiError(t, body) != "store_unavailable" {
		t.Fatalf("store down: %d %s", code, body)
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, webtier.Limits{})
	for _, r := range []struct{ method, path string }{{"GET", "/healthz"}, {"GET", "/metrics"}, {"GET", "/v1/status"},
		{"GET", "/"}, {"POST", "/"}, {"GET", "/v1/subjects"}, {"GET", "/nowhere"}} {
		_, _, h := e.call(r.method, r.path, "-", "", nil, nil)
		if h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s: X-Content-Type-Options %q", r.method, r.path, h.Get("X-Content-Type-Options"))
		}
	}
	// The page (webtier/ui) loads only its own files: no inline script or style.
	_, page, h := e.call("GET", "/", "-", "", nil, nil)
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "form-action 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("page CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") || strings.Contains(page, "<style") || strings.Contains(page, " style=") ||
		strings.Count(page, "<script") != strings.Count(page, "<script src=") {
		t.Errorf("the page must need no inline script or style and no unsafe-* in its CSP")
	}
}

// After a burst of rejected keys an address gets 429 before any store read,
// even for a good key, until its bucket refills.
func TestBadKeysFromOneAddressAreThrottled(t *testing.T) {
	e := newEnvAuth(t, webtier.Limits{}, webtier.AuthOptions{BadKeyRate: 0.5, BadKeyBurst: 3})
	good, _ := e.newKey(apikeys.Admin, 0, 0)
	for i := range 3 {
		if code, _, _ := e.call("GET", "/v1/subjects", "-", "", nil, bearer("ffk_0123456789abcdef_"+strings.Repeat("B", 43))); code != 401 {
			t.Fatalf("bad key %d: %d", i, code)
		}
	}
	code, body, h := e.call("GET", "/v1/subjects", "-", "", nil, bearer(good))
	if code != 429 || apiError(t, body) != "rate_limited" || h.Get("Retry-After") != "2" {
		t.Fatalf("after the burst of bad keys: %d %s %q", code, body, h.Get("Retry-After"))
	}
	// Requests without a key are not affected.
	if code, _, _ := e.call("GET", "/healthz", "-", "", nil, nil); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
}
