// Package e2ekit holds what both end-to-end suites (test/e2e, in process, and
// test/cloude2e, on the AWS emulators) need: the shared face dataset, multipart
// uploads and polling.
package e2ekit

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/facefleet/facefleet/internal/testenv"
)

// Person is one folder of the dataset.
type Person struct {
	Name   string
	Files  []string // base names, sorted
	Photos [][]byte // Photos[i] is the content of Files[i]
}

// LoadFaces reads testenv.Shared "faces" (one folder of PNG crops per person; it skips
// or fails as testenv decides when the dataset is absent). It fails the test when
// there is nobody or someone has fewer than minPhotos photos.
func LoadFaces(t testing.TB, minPhotos int) []Person {
	t.Helper()
	dir := testenv.Shared(t, "faces")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var people []Person
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		files, err := filepath.Glob(filepath.Join(dir, e.Name(), "*.png"))
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(files)
		p := Person{Name: e.Name()}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			p.Files = append(p.Files, filepath.Base(f))
			p.Photos = append(p.Photos, b)
		}
		if len(p.Photos) < minPhotos {
			t.Fatalf("%s has %d photos, want at least %d", p.Name, len(p.Photos), minPhotos)
		}
		people = append(people, p)
	}
	if len(people) == 0 {
		t.Fatalf("no people in %s", dir)
	}
	return people
}
