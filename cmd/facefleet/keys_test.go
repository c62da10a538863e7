package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/facefleet/facefleet/internal/apikeys"
	"github.com/facefleet/facefleet/internal/blob/fileblob"
)

func TestKeysCommand(t *testing.T) {
	t.Setenv("FACEFLEET_OUTPUT_BUCKET", "") // the local store, whatever the caller's environment
	ctx := context.Background()
	data := t.TempDir()
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := dispatch(ctx, append([]string{"keys"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, stderr := run("create", "-role", "admin", "-name", "ops", "-data", data)
	key := strings.TrimSpace(out)
	if code != 0 || len(key) != apikeys.KeyLen || !strings.Contains(stderr, "shown only now") {
		t.Fatalf("create: %d %q %q", code, out, stderr)
	}
	_, out2, _ := run("create", "-role", "recognize", "-rate", "5", "-data", data)
	if strings.TrimSpace(out2) == key {
		t.Fatal("two creates printed the same key")
	}
	b, err := fileblob.New(filepath.Join(data, "outputs"))
	if err != nil {
		t.Fatal(err)
	}
	st := apikeys.NewStore(b, apikeys.Options{CacheTTL: -1})
	rec, err := st.Authenticate(ctx, key)
	if err != nil || rec.Role != apikeys.Admin || rec.Name != "ops" {
		t.Fatalf("the created key does not authenticate: %+v %v", rec, err)
	}
	code, out, _ = run("list", "-data", data)
	if code != 0 || !strings.Contains(out, rec.ID) || !strings.Contains(out, "admin") || !strings.Contains(out, "recognize") ||
		!strings.Contains(out, " 5 ") || !strings.Contains(out, " 10 ") || strings.Contains(out, key[21:]) {
		t.Fatalf("list: %d\n%s", code, out)
	}
	if code, _, stderr := run("revoke", "-data", data, rec.ID); code != 0 || !strings.Contains(stderr, "revoked") {
		t.Fatalf("revoke: %d %s", code, stderr)
	}
	if _, err := st.Authenticate(ctx, key); !errors.Is(err, apikeys.ErrInvalidKey) {
		t.Fatalf("revoked key still authenticates: %v", err)
	}
	for _, bad := range [][]string{
		{"create", "-data", data}, {"create", "-role", "root", "-data", data}, {"revoke", "-data", data, rec.ID},
		{"revoke", "-data", data}, {"rotate"}, {},
	} {
		if code, _, stderr := run(bad...); code == 0 || stderr == "" {
			t.Errorf("keys %q: exit %d, stderr %q", bad, code, stderr)
		}
	}
}
