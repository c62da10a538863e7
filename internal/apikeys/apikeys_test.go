package apikeys

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/blob/memblob"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func TestCreateAuthenticateStoresOnlyTheHash(t *testing.T) {
	ctx := context.Background()
	b := memblob.New()
	s := NewStore(b, Options{})
	key, rec, err := s.Create(ctx, Admin, "ops laptop", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != KeyLen || !strings.HasPrefix(key, "ffk_"+rec.ID+"_") {
		t.Fatalf("key %q (len %d), id %s", key, len(key), rec.ID)
	}
	data, _, err := b.Get(ctx, Prefix+rec.ID+".json")
	if err != nil {
		t.Fatal(err)
	}
	secret := key[len("ffk_")+16+1:]
	if strings.Contains(string(data), secret) {
		t.Fatalf("the stored record holds the secret: %s", data)
	}
	sum := sha256.Sum256([]byte(key))
	if !strings.Contains(string(data), hex.EncodeToString(sum[:])) {
		t.Fatalf("the stored record lacks the key's SHA-256: %s", data)
	}
	got, err := s.Authenticate(ctx, key)
	if err != nil || got.Role != Admin || got.ID != rec.ID || got.Name != "ops laptop" {
		t.Fatalf("Authenticate = %+v, %v", got, err)
	}
	// A second store on the same data (another web tier) accepts it too.
	if _, err := NewStore(b, Options{}).Authenticate(ctx, key); err != nil {
		t.Fatal(err)
	}
	// Two keys never collide.
	key2, rec2, _ := s.Create(ctx, Recognize, "", 0, 0)
	if key2 == key || rec2.ID == rec.ID {
		t.Fatal("two keys are equal")
	}
}

func TestRejectsBadKeys(t *testing.T) {
	ctx := context.Background()
	s := NewStore(memblob.New(), Options{})
	key, _, err := s.Create(ctx, Recognize, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	flip := []byte(key)
	last := len(flip) - 1
	if flip[last] == 'A' {
		flip[last] = 'B'
	} else {
		flip[last] = 'A'
	}
	unknown := "ffk_0123456789abcdef_" + key[len(key)-43:]
	for name, k := range map[string]string{
		"empty": "", "garbage": "hello", "wrong secret": string(flip), "unknown id": unknown,
		"truncated": key[:len(key)-1], "extra": key + "x", "bad alphabet": key[:len(key)-1] + "!",
		"upper-case id": "ffk_" + strings.ToUpper(key[4:20]) + key[20:], "spaces": " " + key[1:],
	} {
		if _, err := s.Authenticate(ctx, k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s: err %v, want ErrInvalidKey", name, err)
		}
	}
}

// failing is a store whose reads fail: an outage must not look like a bad key.
type failing struct{ blob.Store }

func (failing) Get(context.Context, string) ([]byte, blob.Attributes, error) {
	return nil, blob.Attributes{}, errors.New("connection refused")
}

func TestStoreFailureIsNotAnInvalidKey(t *testing.T) {
	ctx := context.Background()
	b := memblob.New()
	key, _, err := NewStore(b, Options{}).Create(ctx, Admin, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewStore(failing{b}, Options{}).Authenticate(ctx, key)
	if err == nil || errors.Is(err, ErrInvalidKey) {
		t.Fatalf("err %v: want a store error, not ErrInvalidKey", err)
	}
}

func TestRevokeTakesEffectWithinTheCacheTTL(t *testing.T) {
	ctx := context.Background()
	b := memblob.New()
	c := newClock()
	admin := NewStore(b, Options{Now: c.now})                          // the CLI
	web := NewStore(b, Options{CacheTTL: 2 * time.Second, Now: c.now}) // a web tier
	key, rec, err := admin.Create(ctx, Admin, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := web.Authenticate(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := admin.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	c.advance(time.Second)
	if _, err := web.Authenticate(ctx, key); err != nil {
		t.Fatalf("cached key rejected before the TTL: %v", err)
	}
	c.advance(1001 * time.Millisecond)
	if _, err := web.Authenticate(ctx, key); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("revoked key accepted after the TTL: %v", err)
	}
	// The store that revoked it forgets at once.
	if _, err := admin.Authenticate(ctx, key); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("revoking store still accepts: %v", err)
	}
	if err := admin.Revoke(ctx, rec.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
	if err := admin.Revoke(ctx, "../../gallery/gallery"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke of a path: %v", err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	s := NewStore(memblob.New(), Options{MaxCached: 50})
	for i := range 500 {
		k := "ffk_" + hex.EncodeToString([]byte{0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)}) + "_" + strings.Repeat("A", 43)
		if _, err := s.Authenticate(ctx, k); !errors.Is(err, ErrInvalidKey) {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	n := len(s.cache)
	s.mu.Unlock()
	if n > 50 {
		t.Fatalf("cache holds %d entries, cap 50", n)
	}
}

func TestListAndValidation(t *testing.T) {
	ctx := context.Background()
	b := memblob.New()
	c := newClock()
	s := NewStore(b, Options{Now: c.now})
	_, a, _ := s.Create(ctx, Admin, "first", 0, 0)
	c.advance(time.Minute)
	_, r, _ := s.Create(ctx, Recognize, "second", 5, 10)
	b.Put(ctx, Prefix+"README", []byte("not a key"), "text/plain") // ignored
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 || list[0].ID != a.ID || list[1].ID != r.ID || list[1].Rate != 5 || list[1].Burst != 10 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	for _, bad := range []struct {
		role  Role
		name  string
		rate  float64
		burst int
	}{{"root", "", 0, 0}, {"", "", 0, 0}, {Admin, "a\nb", 0, 0}, {Admin, strings.Repeat("x", 101), 0, 0}, {Admin, "", -1, 0}} {
		if _, _, err := s.Create(ctx, bad.role, bad.name, bad.rate, bad.burst); err == nil {
			t.Errorf("Create(%+v) accepted", bad)
		}
	}
	// A record that is not ours is an error, not a key.
	b.Put(ctx, Prefix+"00000000000000aa.json", []byte(`{"v":9,"id":"00000000000000aa"}`), "application/json")
	if _, err := s.List(ctx); err == nil {
		t.Fatal("List accepted a foreign record")
	}
}

func TestRolePermits(t *testing.T) {
	for _, c := range []struct {
		have, need Role
		ok         bool
	}{{Admin, Admin, true}, {Admin, Recognize, true}, {Recognize, Recognize, true}, {Recognize, Admin, false}, {"", Recognize, false}} {
		if c.have.Permits(c.need) != c.ok {
			t.Errorf("%q.Permits(%q) != %v", c.have, c.need, c.ok)
		}
	}
}

func TestLimiter(t *testing.T) {
	c := newClock()
	l := NewLimiter(3, c.now)
	for i := range 4 {
		if ok, _ := l.Allow("k", 2, 4); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := l.Allow("k", 2, 4)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("5th: ok %v wait %v, want refused for 500ms", ok, wait)
	}
	c.advance(499 * time.Millisecond)
	if ok, _ := l.Allow("k", 2, 4); ok {
		t.Fatal("a token appeared early")
	}
	c.advance(2 * time.Millisecond)
	if ok, _ := l.Allow("k", 2, 4); !ok {
		t.Fatal("refill did not give a token")
	}
	// Other names have their own buckets; unlimited needs none.
	if ok, _ := l.Allow("other", 2, 4); !ok {
		t.Fatal("another name was limited")
	}
	if ok, _ := l.Allow("free", 0, 0); !ok || l.Len() != 2 {
		t.Fatalf("unlimited: ok %v, buckets %d", ok, l.Len())
	}
	// The map is bounded: full (idle) buckets are forgotten first.
	c.advance(time.Minute)
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		l.Allow(n, 1, 1)
	}
	if l.Len() > 3 {
		t.Fatalf("%d buckets, cap 3", l.Len())
	}
}

func TestLimiterEmpty(t *testing.T) {
	c := newClock()
	l := NewLimiter(0, c.now)
	if empty, _ := l.Empty("x"); empty {
		t.Fatal("an unseen name is empty")
	}
	l.Allow("x", 1, 1)
	if empty, wait := l.Empty("x"); !empty || wait != time.Second {
		t.Fatalf("after the only token: empty %v wait %v", empty, wait)
	}
	if empty, _ := l.Empty("x"); !empty {
		t.Fatal("Empty took a token back")
	}
	c.advance(time.Second)
	if empty, _ := l.Empty("x"); empty {
		t.Fatal("no refill")
	}
}
