// Package fileblob is the blob port on a local folder, the embedded default.
//
// Layout: a key's "/"-separated segments become sub-folders; each folder segment
// gets the suffix ".d" and the object file the suffix ".obj", so the keys "a" and
// "a/b" (both legal in S3) never collide as file and folder. An object file holds
// one JSON header line (content type, ETag, size, modification time) followed by
// the bytes, so a Put is one temp-file-plus-rename and a reader sees the old or
// the new object with its own metadata, never a mix.
package fileblob

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/facefleet/facefleet/internal/blob"
)

const (
	dirSuffix = ".d"
	objSuffix = ".obj"
	tmpPrefix = ".tmp-"
	// maxSegment keeps segment+suffix within the usual 255-byte file name limit.
	maxSegment = 250
	// maxHeader bounds the JSON header line, so a corrupt file cannot make Head
	// read a whole object.
	maxHeader = 4096
	formatV1  = 1
)

// ErrCorrupt is returned (wrapped) when an object file is unreadable as such.
var ErrCorrupt = errors.New("fileblob: object file is corrupt")

// header is the first line of an object file.
type header struct {
	V           int       `json:"v"`
	ContentType string    `json:"contentType"`
	ETag        string    `json:"etag"`
	Size        int64     `json:"size"`
	Modified    time.Time `json:"modified"`
}

// Options tune a store; the zero value is the safe default.
type Options struct {
	// NoSync skips the fsync before each rename. Writes stay atomic for readers,
	// but a machine crash may leave an empty or missing object; use it for
	// scratch data and tests only (it makes a 64 KiB Put several times faster).
	NoSync bool
}

// Store keeps objects under one folder. It is safe for concurrent use, also by
// several processes on the same folder (writes are renames).
type Store struct {
	root string
	sync bool
}

var _ blob.Store = (*Store)(nil)

// New opens (creating if needed) the store in dir; at most one Options.
func New(dir string, opts ...Options) (*Store, error) {
	var o Options
	switch len(opts) {
	case 0:
	case 1:
		o = opts[0]
	default:
		return nil, fmt.Errorf("fileblob: New takes at most one Options, got %d", len(opts))
	}
	if dir == "" {
		return nil, errors.New("fileblob: empty data folder")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fileblob: resolving data folder %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("fileblob: creating data folder %q: %w", abs, err)
	}
	return &Store{root: abs, sync: !o.NoSync}, nil
}

// Dir is the store's folder.
func (s *Store) Dir() string { return s.root }

// path maps a valid key to its object file.
func (s *Store) path(key string) (string, error) {
	if err := blob.ValidateKey(key); err != nil {
		return "", err
	}
	segs := strings.Split(key, "/")
	parts := make([]string, 0, len(segs)+1)
	parts = append(parts, s.root)
	for i, seg := range segs {
		if len(seg) > maxSegment {
			return "", fmt.Errorf("fileblob: key %q has a segment of %d bytes, over the %d-byte file name limit: %w", key, len(seg), maxSegment, blob.ErrInvalidKey)
		}
		if i < len(segs)-1 {
			parts = append(parts, seg+dirSuffix)
		} else {
			parts = append(parts, seg+objSuffix)
		}
	}
	return filepath.Join(parts...), nil
}

// Put writes the object atomically (temp file in the same folder, fsync, rename).
func (s *Store) Put(ctx context.Context, key string, data []byte, contentType string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	p, err := s.path(key)
	if err != nil {
		return "", err
	}
	if contentType == "" {
		contentType = blob.DefaultContentType
	}
	h := header{V: formatV1, ContentType: contentType, ETag: blob.ETagOf(data), Size: int64(len(data)), Modified: time.Now().UTC()}
	line, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("fileblob: encoding header of %q: %w", key, err)
	}
	line = append(line, '\n')
	// A concurrent Delete may prune the folder between MkdirAll and CreateTemp;
	// try again a few times before giving up.
	for attempt := 0; ; attempt++ {
		err = writeAtomic(p, line, data, s.sync)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("fileblob: writing %q: %w", key, err)
	}
	return h.ETag, nil
}

func writeAtomic(p string, head, data []byte, sync bool) (err error) {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(head); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if sync {
		if err = f.Sync(); err != nil {
			return err
		}
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// readHeader parses the header line; it leaves r at the first data byte.
func readHeader(r *bufio.Reader, key string) (header, error) {
	var h header
	line, err := r.ReadSlice('\n')
	if err != nil {
		return h, fmt.Errorf("fileblob: %q has no header line: %w", key, ErrCorrupt)
	}
	if err := json.Unmarshal(line, &h); err != nil || h.V != formatV1 {
		return h, fmt.Errorf("fileblob: %q has an unreadable header: %w", key, ErrCorrupt)
	}
	return h, nil
}

func (h header) attrs(key string) blob.Attributes {
	return blob.Attributes{Key: key, ContentType: h.ContentType, ETag: h.ETag, Size: h.Size, Modified: h.Modified}
}

func (s *Store) open(ctx context.Context, key string) (*os.File, *bufio.Reader, header, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, header{}, err
	}
	p, err := s.path(key)
	if err != nil {
		return nil, nil, header{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) || isNotDir(err) {
			return nil, nil, header{}, fmt.Errorf("fileblob: %q: %w", key, blob.ErrNotFound)
		}
		return nil, nil, header{}, fmt.Errorf("fileblob: opening %q: %w", key, err)
	}
	r := bufio.NewReaderSize(f, maxHeader)
	h, err := readHeader(r, key)
	if err != nil {
		_ = f.Close()
		return nil, nil, header{}, err
	}
	return f, r, h, nil
}

// isNotDir reports ENOTDIR, which a path through a file yields; it cannot happen
// with the suffix layout but a hand-edited folder might produce it.
func isNotDir(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "not a directory")
}

// Get returns the object's bytes and attributes.
func (s *Store) Get(ctx context.Context, key string) ([]byte, blob.Attributes, error) {
	f, r, h, err := s.open(ctx, key)
	if err != nil {
		return nil, blob.Attributes{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, blob.Attributes{}, fmt.Errorf("fileblob: stat of %q: %w", key, err)
	}
	if h.Size < 0 || h.Size > st.Size() {
		return nil, blob.Attributes{}, fmt.Errorf("fileblob: %q claims %d bytes in a %d-byte file: %w", key, h.Size, st.Size(), ErrCorrupt)
	}
	data := make([]byte, h.Size)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, blob.Attributes{}, fmt.Errorf("fileblob: %q is shorter than its header's %d bytes: %w", key, h.Size, ErrCorrupt)
	}
	return data, h.attrs(key), nil
}

// Head returns the attributes without reading the bytes.
func (s *Store) Head(ctx context.Context, key string) (blob.Attributes, error) {
	f, _, h, err := s.open(ctx, key)
	if err != nil {
		return blob.Attributes{}, err
	}
	_ = f.Close()
	return h.attrs(key), nil
}

// List returns the objects whose keys start with prefix, sorted by key bytes as
// S3 sorts them. It walks only the folder the prefix's complete segments name.
func (s *Store) List(ctx context.Context, prefix string) ([]blob.Attributes, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start, keyBase := s.root, ""
	if i := strings.LastIndex(prefix, "/"); i > 0 && blob.ValidateKey(prefix[:i]) == nil {
		for seg := range strings.SplitSeq(prefix[:i], "/") {
			start = filepath.Join(start, seg+dirSuffix)
		}
		keyBase = prefix[:i+1]
	}
	out := []blob.Attributes{}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // the folder vanished (pruned by Delete) or never existed
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != start && !strings.HasSuffix(name, dirSuffix) {
				return fs.SkipDir
			}
			return nil
		}
		// Temp files (".tmp-<digits>") never end in ".obj"; a key may start with ".tmp-".
		if !d.Type().IsRegular() || !strings.HasSuffix(name, objSuffix) {
			return nil
		}
		rel, err := filepath.Rel(start, p)
		if err != nil {
			return err
		}
		key := keyBase + keyOf(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		a, err := s.Head(ctx, key)
		if errors.Is(err, blob.ErrNotFound) {
			return nil // deleted while we walked
		}
		if err != nil {
			return err
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fileblob: listing prefix %q: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// keyOf turns a relative object path back into its key.
func keyOf(rel string) string {
	segs := strings.Split(filepath.ToSlash(rel), "/")
	for i, seg := range segs {
		if i < len(segs)-1 {
			segs[i] = strings.TrimSuffix(seg, dirSuffix)
		} else {
			segs[i] = strings.TrimSuffix(seg, objSuffix)
		}
	}
	return strings.Join(segs, "/")
}

// Delete removes the object and prunes folders it leaves empty; a missing key is
// not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil
		}
		return fmt.Errorf("fileblob: deleting %q: %w", key, err)
	}
	// Best effort: Remove fails on a folder that is not empty (or that a
	// concurrent Put just filled), which is where pruning stops.
	for dir := filepath.Dir(p); dir != s.root && strings.HasPrefix(dir, s.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}
