// Package gallery holds the enrolled people: named subjects with one or more 128-D
// face descriptors, matched by Euclidean distance. Its on-disk form is versioned JSON
// so the service can keep it in a blob store and reload it when it changes.
//
// A Gallery is safe for concurrent use: Match takes a read lock, edits a write lock.
package gallery

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/facefleet/facefleet/engine"
)

// Version is the on-disk format this package writes and the only one it reads.
const Version = 1

// DefaultThreshold is the usual dlib/face-api cut-off: a nearest distance above it
// means the face belongs to nobody enrolled.
const DefaultThreshold = 0.6

// DescriptorLen is the length of every descriptor.
const DescriptorLen = 128

// Subject is one enrolled person.
type Subject struct {
	Name        string      `json:"name"`
	Descriptors [][]float32 `json:"descriptors"`
	// Faces describes each descriptor, in the same order: its id, the box it
	// was taken from and when. Files written before face ids existed lack it;
	// their faces get ids derived from name, position and descriptor, the same
	// on every load, and keep them once the gallery is written again.
	Faces []FaceInfo `json:"faces,omitempty"`
}

// FaceInfo is what the gallery remembers about one enrolled face.
type FaceInfo struct {
	ID      string    `json:"id"`
	Box     *Box      `json:"box,omitempty"`
	Created time.Time `json:"created,omitzero"`
}

// Box is where a face was found in its enrollment photo, in pixels.
type Box struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
	W float64 `json:"w"`
	H float64 `json:"h"`
}

type face struct {
	desc []float32
	info FaceInfo
}

// Gallery is a set of subjects.
type Gallery struct {
	mu       sync.RWMutex
	subjects map[string][]face
	// idx is the flat matrix that matching scans, built on the first match
	// after a change (nil: stale); once built it is never modified.
	idx *matrix
}

// New returns an empty gallery.
func New() *Gallery { return &Gallery{subjects: map[string][]face{}} }

// NewFaceID is a random face id (16 hex digits).
func NewFaceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// legacyFaceID is the stable id of the i-th face of name in a file without ids.
func legacyFaceID(name string, i int, d []float32) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00", name, i)
	for _, v := range d {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func validFaceID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

type fileFormat struct {
	Version  int       `json:"version"`
	Subjects []Subject `json:"subjects"`
}

// MaxNameLen is the longest subject name, in bytes.
const MaxNameLen = 64

// ValidName checks a subject name; the gallery owns the rule, and the web tier,
// the CLI and a loaded gallery file all apply it. A name is 1..MaxNameLen bytes
// of UTF-8 without control characters, is not a reserved answer (Unknown,
// NoFace), is not . or .., has no / \ : < > or " and no surrounding
// white space (they would break store keys, markup and the course's
// "<stem>:<name>" answer).
func ValidName(name string) error {
	switch {
	case name == "" || len(name) > MaxNameLen:
		return fmt.Errorf("subject name is %d bytes; names are 1..%d bytes of UTF-8 (refused, never cut)", len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return errors.New("subject name is not UTF-8")
	case name == engine.Unknown || name == engine.NoFace:
		return fmt.Errorf("%q is reserved", name)
	case name == "." || name == "..":
		return errors.New("subject names . and .. are refused (clients resolve them as paths)")
	case strings.ContainsAny(name, `/\:<>"`):
		return errors.New(`subject names may not contain / \ : < > or "`)
	case strings.TrimSpace(name) != name:
		return errors.New("subject names may not start or end with white space")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return errors.New("subject name contains a control character")
		}
	}
	return nil
}

// Add enrols descriptors for name (appending to any it has).
func (g *Gallery) Add(name string, descriptors ...[]float32) error {
	if err := ValidName(name); err != nil {
		return fmt.Errorf("gallery: subject %q: %w", name, err)
	}
	if len(descriptors) == 0 {
		return fmt.Errorf("gallery: no descriptors given for %q", name)
	}
	for i, d := range descriptors {
		if err := checkDescriptor(d); err != nil {
			return fmt.Errorf("gallery: descriptor %d of %q: %w", i, name, err)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now().UTC().Truncate(time.Second)
	for _, d := range descriptors {
		g.subjects[name] = append(g.subjects[name], face{desc: slices.Clone(d), info: FaceInfo{ID: NewFaceID(), Created: now}})
	}
	g.idx = nil
	return nil
}

// AddFace enrols one descriptor for name with the box it came from (nil: none)
// and returns the new face's id.
func (g *Gallery) AddFace(name string, d []float32, box *Box) (string, error) {
	if name == "" || name == engine.Unknown || name == engine.NoFace {
		return "", fmt.Errorf("gallery: %q cannot be a subject name", name)
	}
	if err := checkDescriptor(d); err != nil {
		return "", fmt.Errorf("gallery: descriptor of %q: %w", name, err)
	}
	info := FaceInfo{ID: NewFaceID(), Created: time.Now().UTC().Truncate(time.Second)}
	if box != nil {
		b := *box
		info.Box = &b
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.subjects[name] = append(g.subjects[name], face{desc: slices.Clone(d), info: info})
	g.idx = nil
	return info.ID, nil
}

// PutSubject replaces subject s.Name with s (its faces keep their ids).
func (g *Gallery) PutSubject(s Subject) error {
	faces, err := subjectFaces(s)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.subjects[s.Name] = faces
	g.idx = nil
	return nil
}

// subjectFaces checks a file's subject and builds its faces.
func subjectFaces(s Subject) ([]face, error) {
	if s.Name == "" || s.Name == engine.Unknown || s.Name == engine.NoFace {
		return nil, fmt.Errorf("gallery: %q cannot be a subject name", s.Name)
	}
	if len(s.Descriptors) == 0 {
		return nil, fmt.Errorf("gallery: no descriptors given for %q", s.Name)
	}
	if s.Faces != nil && len(s.Faces) != len(s.Descriptors) {
		return nil, fmt.Errorf("gallery: %q has %d descriptors but %d faces", s.Name, len(s.Descriptors), len(s.Faces))
	}
	seen := map[string]bool{}
	out := make([]face, len(s.Descriptors))
	for i, d := range s.Descriptors {
		if err := checkDescriptor(d); err != nil {
			return nil, fmt.Errorf("gallery: descriptor %d of %q: %w", i, s.Name, err)
		}
		info := FaceInfo{ID: legacyFaceID(s.Name, i, d)}
		if s.Faces != nil {
			info = s.Faces[i]
			if info.Box != nil {
				b := *info.Box
				info.Box = &b
			}
		}
		if !validFaceID(info.ID) || seen[info.ID] {
			return nil, fmt.Errorf("gallery: face %d of %q has a missing, malformed or repeated id %q", i, s.Name, info.ID)
		}
		seen[info.ID] = true
		out[i] = face{desc: slices.Clone(d), info: info}
	}
	return out, nil
}

// Faces lists subject's faces in enrollment order; ok is false when the
// subject is not enrolled.
func (g *Gallery) Faces(subject string) (faces []FaceInfo, ok bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	fs, ok := g.subjects[subject]
	for _, f := range fs {
		faces = append(faces, f.info)
	}
	return faces, ok
}

// RemoveFace deletes one face of subject by id; the subject goes with its last
// face. It reports whether the face was there.
func (g *Gallery) RemoveFace(subject, id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	fs := g.subjects[subject]
	for i, f := range fs {
		if f.info.ID == id {
			g.idx = nil
			fs = slices.Delete(fs, i, i+1)
			if len(fs) == 0 {
				delete(g.subjects, subject)
			} else {
				g.subjects[subject] = fs
			}
			return true
		}
	}
	return false
}

func checkDescriptor(d []float32) error {
	if len(d) != DescriptorLen {
		return fmt.Errorf("has %d values, want %d", len(d), DescriptorLen)
	}
	for _, v := range d {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return errors.New("holds NaN or Inf")
		}
	}
	return nil
}

// Remove deletes a subject; it reports whether it was there.
func (g *Gallery) Remove(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.subjects[name]
	delete(g.subjects, name)
	g.idx = nil
	return ok
}

// Rename gives subject from the name to; when to is already enrolled, from's
// faces are appended to it (merged). ok is false when from is not enrolled.
func (g *Gallery) Rename(from, to string) (merged, ok bool, err error) {
	if to == "" || to == engine.Unknown || to == engine.NoFace {
		return false, false, fmt.Errorf("gallery: %q cannot be a subject name", to)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	ds, ok := g.subjects[from]
	if !ok {
		return false, false, nil
	}
	if from == to {
		return false, true, nil
	}
	_, merged = g.subjects[to]
	g.subjects[to] = append(g.subjects[to], ds...)
	delete(g.subjects, from)
	g.idx = nil
	return merged, true, nil
}

// Descriptors returns copies of subject's descriptors (nil when not enrolled).
func (g *Gallery) Descriptors(subject string) [][]float32 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	var out [][]float32
	for _, f := range g.subjects[subject] {
		out = append(out, slices.Clone(f.desc))
	}
	return out
}

// Subjects lists the subjects, sorted by name (descriptors are copies).
func (g *Gallery) Subjects() []Subject {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]Subject, 0, len(g.subjects))
	for name, fs := range g.subjects {
		s := Subject{Name: name}
		for _, f := range fs {
			s.Descriptors = append(s.Descriptors, slices.Clone(f.desc))
			s.Faces = append(s.Faces, f.info)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Len is the number of subjects.
func (g *Gallery) Len() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.subjects)
}

// Match returns the subject with the descriptor nearest to d and that distance.
// name is engine.Unknown when the gallery is empty or the distance exceeds
// threshold (threshold <= 0 means DefaultThreshold).
func (g *Gallery) Match(d []float32, threshold float64) (name string, distance float64) {
	if threshold <= 0 {
		threshold = DefaultThreshold
	}
	name, distance = g.Nearest(d)
	if name == "" || distance > threshold {
		return engine.Unknown, distance
	}
	return name, distance
}

// Nearest returns the nearest subject whatever the distance ("" and +Inf when
// the gallery is empty or d has the wrong length). Ties go to the smaller name so
// answers do not depend on map order.
func (g *Gallery) Nearest(d []float32) (name string, distance float64) {
	if len(d) != DescriptorLen {
		return "", math.Inf(1)
	}
	m := g.index()
	row, sq := m.nearest(d)
	if row < 0 {
		return "", math.Inf(1)
	}
	return m.names[m.owner[row]], math.Sqrt(float64(sq))
}

// Neighbour is a subject and its nearest face's distance.
type Neighbour struct {
	Subject  string
	Distance float64
}

// NearestK returns up to k subjects by their nearest face's distance to d,
// nearest first (ties by name), whatever the distance.
func (g *Gallery) NearestK(d []float32, k int) []Neighbour {
	if k <= 0 || len(d) != DescriptorLen {
		return nil
	}
	m := g.index()
	best := make([]float32, len(m.names))
	for i := range best {
		best[i] = float32(math.Inf(1))
	}
	for r := range m.owner {
		if sq := sqDist(d, m.row(r)); sq < best[m.owner[r]] {
			best[m.owner[r]] = sq
		}
	}
	all := make([]Neighbour, len(m.names))
	for i, n := range m.names {
		all[i] = Neighbour{Subject: n, Distance: math.Sqrt(float64(best[i]))}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Distance != all[j].Distance {
			return all[i].Distance < all[j].Distance
		}
		return all[i].Subject < all[j].Subject
	})
	return all[:min(k, len(all))]
}

// matrix is every descriptor in one contiguous []float32, row r belonging to
// subject names[owner[r]]. Subjects are in name order, so the first of equal
// distances is the smaller name.
type matrix struct {
	data  []float32
	owner []int32
	names []string
}

func (m *matrix) row(r int) []float32 {
	return m.data[r*DescriptorLen : (r+1)*DescriptorLen : (r+1)*DescriptorLen]
}

// index returns the current matrix, building it after a change. The faces'
// descriptors are re-pointed into the matrix, so the gallery holds each
// descriptor once.
func (g *Gallery) index() *matrix {
	g.mu.RLock()
	m := g.idx
	g.mu.RUnlock()
	if m != nil {
		return m
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.idx != nil {
		return g.idx
	}
	names := make([]string, 0, len(g.subjects))
	n := 0
	for name, fs := range g.subjects {
		names = append(names, name)
		n += len(fs)
	}
	sort.Strings(names)
	m = &matrix{data: make([]float32, n*DescriptorLen), owner: make([]int32, n), names: names}
	r := 0
	for i, name := range names {
		fs := g.subjects[name]
		for j := range fs {
			row := m.row(r)
			copy(row, fs[j].desc)
			fs[j].desc = row // shared, never written again: edits replace faces, not values
			m.owner[r] = int32(i)
			r++
		}
	}
	g.idx = m
	return m
}

// nearest returns the row nearest to d and its squared distance (-1 when
// empty). A row is abandoned as soon as its partial sum exceeds the best so
// far: the sum only grows, so the answer is exact.
func (m *matrix) nearest(d []float32) (int, float32) {
	best, bestSq := -1, float32(math.Inf(1))
	d = d[:DescriptorLen]
	for r := range m.owner {
		x := m.data[r*DescriptorLen : (r+1)*DescriptorLen : (r+1)*DescriptorLen]
		var s float32
		for c := 0; c < DescriptorLen; c += 32 {
			s += sqDist32(d[c:c+32:c+32], x[c:c+32:c+32])
			if s > bestSq {
				break
			}
		}
		if s < bestSq {
			best, bestSq = r, s
		}
	}
	return best, bestSq
}

// sqDist32 is the squared distance of two 32-value blocks (four accumulators,
// combined in a fixed order, so every caller gets the same bits).
func sqDist32(a, b []float32) float32 {
	a, b = a[:32:32], b[:32:32]
	var s0, s1, s2, s3 float32
	for i := 0; i < 32; i += 4 {
		x0, x1, x2, x3 := a[i]-b[i], a[i+1]-b[i+1], a[i+2]-b[i+2], a[i+3]-b[i+3]
		s0 += x0 * x0
		s1 += x1 * x1
		s2 += x2 * x2
		s3 += x3 * x3
	}
	return (s0 + s1) + (s2 + s3)
}

// sqDist is the squared distance of two descriptors, summed block by block as
// nearest does.
func sqDist(a, b []float32) float32 {
	var s float32
	for c := 0; c < DescriptorLen; c += 32 {
		s += sqDist32(a[c:c+32], b[c:c+32])
	}
	return s
}

// Distance is the Euclidean distance between two descriptors of equal length.
func Distance(a, b []float32) float64 {
	if len(a) == DescriptorLen && len(b) == DescriptorLen {
		return math.Sqrt(float64(sqDist(a, b))) // the same bits as matching
	}
	var s float32
	for i := range a {
		x := a[i] - b[i]
		s += x * x
	}
	return math.Sqrt(float64(s))
}

// Largest is the face the service names and enrolls: the one with the largest
// box among those with a descriptor; nil when none has one. The CLI and the
// worker answer for this face and enroll it (one definition for both).
func Largest(faces []engine.Face) *engine.Face {
	var best *engine.Face
	for i := range faces {
		f := &faces[i]
		if len(f.Descriptor) == 0 {
			continue
		}
		if best == nil || f.Box.W*f.Box.H > best.Box.W*best.Box.H {
			best = f
		}
	}
	return best
}

// Answer is the course's answer for one image: the best match of the largest face
// (by box area). It returns engine.NoFace and nil when there is no face (or no
// face with a descriptor), engine.Unknown when nobody is close enough. The
// returned face is a copy with Subject and Distance filled.
func Answer(result *engine.Result, g *Gallery, threshold float64) (string, *engine.Face) {
	best := Largest(result.Faces)
	if best == nil {
		return engine.NoFace, nil
	}
	face := *best
	face.Subject, face.Distance = engine.Unknown, 0
	if g != nil {
		face.Subject, face.Distance = g.Match(face.Descriptor, threshold)
	}
	return face.Subject, &face
}

// Marshal encodes the gallery in the versioned on-disk format.
func (g *Gallery) Marshal() ([]byte, error) {
	return json.MarshalIndent(fileFormat{Version: Version, Subjects: g.Subjects()}, "", " ")
}

// Unmarshal decodes a gallery written by Marshal. It rejects other versions and
// malformed descriptors with an error that says what is wrong.
func Unmarshal(data []byte) (*Gallery, error) {
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("gallery: not a gallery file (invalid JSON): %w", err)
	}
	if probe.Version == nil {
		return nil, errors.New("gallery: file has no version field; it was not written by facefleet")
	}
	if *probe.Version != Version {
		return nil, fmt.Errorf("gallery: unsupported format version %d (this build reads version %d); re-enroll or upgrade facefleet", *probe.Version, Version)
	}
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("gallery: malformed version %d file: %w", Version, err)
	}
	g := New()
	for _, s := range f.Subjects {
		faces, err := subjectFaces(s)
		if err != nil {
			return nil, fmt.Errorf("gallery: bad file: %w", err)
		}
		g.subjects[s.Name] = append(g.subjects[s.Name], faces...)
	}
	return g, nil
}

// Load reads a gallery file.
func Load(path string) (*Gallery, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gallery: reading %s: %w", path, err)
	}
	g, err := Unmarshal(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return g, nil
}

// Save writes a gallery file atomically (temp file + rename).
func (g *Gallery) Save(path string) error {
	data, err := g.Marshal()
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("gallery: writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("gallery: replacing %s: %w", path, err)
	}
	return nil
}
