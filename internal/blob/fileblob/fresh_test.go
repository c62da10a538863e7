package fileblob

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A Put into a folder another Put made, whose commit has not run yet, syncs
// that folder's parent itself: it may be acknowledged first.
func TestPutSyncsParentOfAnotherPutsFreshFolder(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pa, _ := s.path("results/a/1.json")
	a, err := s.writeTemp(pa, []byte("{}\n"), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	results, stem := filepath.Join(s.root, "results.d"), filepath.Join(s.root, "results.d", "a.d")
	if !slices.Equal(a.created, []string{results, stem}) || !slices.Contains(a.dirs, s.root) || !slices.Contains(a.dirs, results) {
		t.Fatalf("first write: created %v, syncs %v", a.created, a.dirs)
	}
	pb, _ := s.path("results/a/2.json")
	b, err := s.writeTemp(pb, []byte("{}\n"), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.created) != 0 || !slices.Contains(b.dirs, s.root) || !slices.Contains(b.dirs, results) || !slices.Contains(b.dirs, stem) {
		t.Fatalf("second write while the first is uncommitted: created %v, syncs %v; want the parents of both fresh folders", b.created, b.dirs)
	}
	// Once the first write's commit ran, a third write syncs only its folder.
	if err := s.commit(a); err != nil {
		t.Fatal(err)
	}
	s.fresh.done(a.created)
	if err := s.commit(b); err != nil {
		t.Fatal(err)
	}
	pc, _ := s.path("results/a/3.json")
	c, err := s.writeTemp(pc, []byte("{}\n"), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.dirs, []string{stem}) {
		t.Fatalf("third write after the commits: syncs %v, want only %s", c.dirs, stem)
	}
	if err := s.commit(c); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{pa, pb, pc} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("object not in place after its commit: %v", err)
		}
	}
}

func (s *Store) commit(w *pending) error {
	if err := s.files.commit(w); err != nil {
		return err
	}
	return s.dirs.commit(w)
}
