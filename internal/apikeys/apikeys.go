// Package apikeys issues, stores and checks facefleet's API keys.
//
// A key is "ffk_<id>_<secret>": id is 16 hex digits (not secret: it names the
// key in lists, logs and revocation), secret is 32 random bytes in base64url
// (256 bits). Only the key's SHA-256 is stored, in the data store (the blob port:
// fileblob under the data folder locally, the output bucket on AWS) as
// auth/keys/<id>.json, so reading the store does not reveal a usable key.
//
// Why SHA-256 and not bcrypt/scrypt/argon2: those are slow on purpose so that a
// stolen hash of a low-entropy password cannot be brute-forced. These keys are
// 256-bit random strings, which no amount of guessing finds, whatever the hash's
// speed; a slow hash would only make every request cost ~50-100 ms of CPU (an
// easy denial of service on a 2-core web tier), and bcrypt also ignores input past
// 72 bytes. A fast hash of a high-entropy secret is what GitHub tokens and AWS
// access keys use too.
//
// Checking a key parses its id, reads its record (cached for a short TTL so that
// a revocation takes effect within it) and compares the SHA-256 of the presented
// key with the stored one in constant time.
package apikeys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/facefleet/facefleet/internal/blob"
)

// Role is what a key may do.
type Role string

const (
	// Admin may do everything: enroll, delete, read and change the gallery,
	// and everything Recognize may.
	Admin Role = "admin"
	// Recognize may only ask who is in an image (POST /, /v1/recognize).
	Recognize Role = "recognize"
)

// ParseRole accepts "admin" or "recognize".
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case Admin, Recognize:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q: use admin or recognize", s)
}

// Permits reports whether a key of role r may do what needs role need.
func (r Role) Permits(need Role) bool {
	return r == Admin || (r == need && r != "")
}

// Prefix is where key records live in the store.
const Prefix = "auth/keys/"

// recordVersion is the stored record's format version.
const recordVersion = 1

// Record is a stored key, without its secret.
type Record struct {
	V    int    `json:"v"`
	ID   string `json:"id"`
	Role Role   `json:"role"`
	Name string `json:"name,omitempty"`
	// SHA256 is the hex SHA-256 of the whole key string.
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created"`
	// Rate (requests per second) and Burst override the server's per-key
	// defaults when positive.
	Rate  float64 `json:"rate,omitempty"`
	Burst int     `json:"burst,omitempty"`
}

// ErrInvalidKey is returned (wrapped) for a key that is malformed, unknown,
// revoked or whose secret does not match.
var ErrInvalidKey = errors.New("apikeys: invalid API key")

// ErrNotFound is returned (wrapped) by Revoke for an unknown id.
var ErrNotFound = errors.New("apikeys: no such key")

const (
	keyPrefix   = "ffk_"
	idHexLen    = 16
	secretBytes = 32
	secretLen   = 43 // base64url, no padding, of 32 bytes
	// KeyLen is the length of every key string.
	KeyLen = len(keyPrefix) + idHexLen + 1 + secretLen
	// MaxNameLen bounds a key's label.
	MaxNameLen = 100
)

// Options configure a Store.
type Options struct {
	// CacheTTL is how long a looked-up record (or its absence) is trusted
	// before the store is read again: the longest a revoked key keeps working
	// on a web tier that used it. Default 5 s; negative disables caching.
	CacheTTL time.Duration
	// MaxCached bounds the cache (default 10000 entries).
	MaxCached int
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Store keeps key records in a blob store. Safe for concurrent use.
type Store struct {
	b   blob.Store
	ttl time.Duration
	max int
	now func() time.Time

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	rec     *Record // nil: no such key
	expires time.Time
}

// NewStore returns a Store over b.
func NewStore(b blob.Store, o Options) *Store {
	if o.CacheTTL == 0 {
		o.CacheTTL = 5 * time.Second
	}
	if o.MaxCached <= 0 {
		o.MaxCached = 10000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Store{b: b, ttl: o.CacheTTL, max: o.MaxCached, now: o.Now, cache: map[string]cached{}}
}

// CacheTTL is the cache lifetime in use (how long a revocation may take).
func (s *Store) CacheTTL() time.Duration { return max(s.ttl, 0) }

// Create makes a new key and stores its hash. The key string is returned once
// and is not recoverable afterwards.
func (s *Store) Create(ctx context.Context, role Role, name string, rate float64, burst int) (string, Record, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return "", Record{}, fmt.Errorf("apikeys: %w", err)
	}
	if err := validName(name); err != nil {
		return "", Record{}, err
	}
	if rate < 0 || burst < 0 {
		return "", Record{}, fmt.Errorf("apikeys: rate %g and burst %d must not be negative", rate, burst)
	}
	var idb [idHexLen / 2]byte
	var sec [secretBytes]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", Record{}, fmt.Errorf("apikeys: random id: %w", err)
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return "", Record{}, fmt.Errorf("apikeys: random secret: %w", err)
	}
	id := hex.EncodeToString(idb[:])
	key := keyPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(sec[:])
	rec := Record{V: recordVersion, ID: id, Role: role, Name: name, SHA256: hashHex(key),
		Created: s.now().UTC().Truncate(time.Second), Rate: rate, Burst: burst}
	data, err := json.Marshal(rec)
	if err != nil {
		return "", Record{}, fmt.Errorf("apikeys: encode record: %w", err)
	}
	if _, err := s.b.Put(ctx, Prefix+id+".json", data, "application/json"); err != nil {
		return "", Record{}, fmt.Errorf("apikeys: store key %s: %w", id, err)
	}
	s.forget(id)
	return key, rec, nil
}

func validName(name string) error {
	if len(name) > MaxNameLen || !utf8.ValidString(name) {
		return fmt.Errorf("apikeys: a key name is at most %d bytes of UTF-8", MaxNameLen)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return errors.New("apikeys: a key name may not contain control characters")
		}
	}
	return nil
}

// List returns every stored key record, oldest first.
func (s *Store) List(ctx context.Context) ([]Record, error) {
	objs, err := s.b.List(ctx, Prefix)
	if err != nil {
		return nil, fmt.Errorf("apikeys: list keys: %w", err)
	}
	out := make([]Record, 0, len(objs))
	for _, o := range objs {
		id := strings.TrimSuffix(strings.TrimPrefix(o.Key, Prefix), ".json")
		if !validID(id) {
			continue
		}
		rec, err := s.load(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // revoked meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *rec)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Revoke deletes key id; ErrNotFound when there is none. Other web tiers stop
// accepting it within their CacheTTL.
func (s *Store) Revoke(ctx context.Context, id string) error {
	id = strings.TrimSpace(id)
	if full, ok := parseID(id); ok { // a whole key names its id too
		id = full
	}
	if !validID(id) {
		return fmt.Errorf("apikeys: %q is not a key id (16 hex digits, as `keys list` shows): %w", id, ErrNotFound)
	}
	if _, err := s.b.Head(ctx, Prefix+id+".json"); err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			return fmt.Errorf("apikeys: key %s: %w", id, ErrNotFound)
		}
		return fmt.Errorf("apikeys: revoke %s: %w", id, err)
	}
	if err := s.b.Delete(ctx, Prefix+id+".json"); err != nil {
		return fmt.Errorf("apikeys: revoke %s: %w", id, err)
	}
	s.forget(id)
	return nil
}

// Authenticate checks a presented key and returns its record. Errors wrap
// ErrInvalidKey for a key that is not accepted; any other error is the store
// failing (answer 503, not 401).
func (s *Store) Authenticate(ctx context.Context, key string) (Record, error) {
	id, ok := parseID(key)
	if !ok {
		return Record{}, fmt.Errorf("%w: not of the form ffk_<16 hex>_<43 base64url>", ErrInvalidKey)
	}
	rec, err := s.lookup(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Record{}, fmt.Errorf("%w: unknown or revoked key %s", ErrInvalidKey, id)
	}
	if err != nil {
		return Record{}, err
	}
	want, err := hex.DecodeString(rec.SHA256)
	got := sha256.Sum256([]byte(key))
	if err != nil || subtle.ConstantTimeCompare(got[:], want) != 1 {
		return Record{}, fmt.Errorf("%w: wrong secret for key %s", ErrInvalidKey, id)
	}
	return *rec, nil
}

// lookup returns the record of id through the cache.
func (s *Store) lookup(ctx context.Context, id string) (*Record, error) {
	now := s.now()
	if s.ttl > 0 {
		s.mu.Lock()
		c, ok := s.cache[id]
		s.mu.Unlock()
		if ok && now.Before(c.expires) {
			if c.rec == nil {
				return nil, ErrNotFound
			}
			return c.rec, nil
		}
	}
	rec, err := s.load(ctx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err // a store failure is not cached
	}
	if s.ttl > 0 {
		s.mu.Lock()
		if len(s.cache) >= s.max {
			s.evict(now)
		}
		s.cache[id] = cached{rec: rec, expires: now.Add(s.ttl)}
		s.mu.Unlock()
	}
	return rec, err
}

// evict makes room: expired entries go first, then (under a flood of made-up
// ids) everything. The caller holds mu.
func (s *Store) evict(now time.Time) {
	for id, c := range s.cache {
		if !now.Before(c.expires) {
			delete(s.cache, id)
		}
	}
	if len(s.cache) >= s.max {
		clear(s.cache)
	}
}

func (s *Store) forget(id string) {
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
}

// load reads the record of id from the store.
func (s *Store) load(ctx context.Context, id string) (*Record, error) {
	data, _, err := s.b.Get(ctx, Prefix+id+".json")
	if errors.Is(err, blob.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("apikeys: read key %s: %w", id, err)
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("apikeys: key record %s is corrupt: %w", id, err)
	}
	if rec.V != recordVersion || rec.ID != id || len(rec.SHA256) != 2*sha256.Size {
		return nil, fmt.Errorf("apikeys: key record %s has version %d, id %q: not a facefleet v%d key record", id, rec.V, rec.ID, recordVersion)
	}
	if _, err := ParseRole(string(rec.Role)); err != nil {
		return nil, fmt.Errorf("apikeys: key record %s: %w", id, err)
	}
	return &rec, nil
}

func hashHex(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// parseID returns the id of a well-formed key.
func parseID(key string) (string, bool) {
	if len(key) != KeyLen || !strings.HasPrefix(key, keyPrefix) || key[len(keyPrefix)+idHexLen] != '_' {
		return "", false
	}
	id := key[len(keyPrefix) : len(keyPrefix)+idHexLen]
	if !validID(id) {
		return "", false
	}
	for _, c := range []byte(key[len(keyPrefix)+idHexLen+1:]) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", false
		}
	}
	return id, true
}

func validID(id string) bool {
	if len(id) != idHexLen {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Transport is an http.RoundTripper that sends Key as "Authorization: Bearer"
// on every request (for clients of the API: tests, benchmarks, loadgen).
type Transport struct {
	Key  string
	Base http.RoundTripper // nil: http.DefaultTransport
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.Key)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}
