// Package gallery holds the enrolled people: named subjects with one or more 128-D
// face descriptors, matched by Euclidean distance. It is the one model of the
// gallery in facefleet: the web tier edits it, the workers match against it and
// the CLI writes it, all through this package.
//
// Layout. A Gallery keeps one row per face in flat columns (descriptors, their
// 8-bit copies, ids, boxes, times, owner), so 500,000 faces cost about 1.4x their
// raw descriptors and an edit never rebuilds anything: adding appends a row,
// removing moves the last row into the hole.
//
// Matching is exact (see match.go): a first pass over the 8-bit copies bounds
// every row's distance from below and above, and only rows whose lower bound can
// still beat the best upper bound are measured in full precision.
//
// Files. Two versioned formats: JSON (version 1, what `facefleet enroll` writes
// and GET /v1/gallery exports, readable by people) and binary (version 2, what
// the Store keeps as snapshots; loads 500,000 faces in well under a second).
// Unmarshal reads both.
//
// Sharing. Store (store.go) keeps a gallery in a blob store as snapshots plus a
// journal of edits appended with conditional creates, so any number of web
// tiers can enroll at once without losing an edit and every worker follows.
//
// A Gallery is safe for concurrent use: matching and reads take a read lock,
// edits a write lock.
package gallery

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/facefleet/facefleet/engine"
)

// Version is the JSON format this package writes and reads (the binary format
// is BinaryVersion).
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

// Gallery is a set of subjects.
type Gallery struct {
	mu   sync.RWMutex
	pool sync.Pool // *scratch for searches
	r    rows
	// subs is indexed by owner; a removed subject leaves an empty name and its
	// slot on free for the next new subject.
	subs   []subject
	free   []int32
	byName map[string]int32
}

type subject struct {
	name string
	rows []int32 // this subject's rows in enrollment order
}

// rows are the faces, one column per field, row i of each column describing the
// same face.
type rows struct {
	desc    []float32 // n x DescriptorLen
	q       []int8    // n x DescriptorLen, see quantize
	qerr    []float32 // |desc - q*quantStep| of each row
	owner   []int32   // index into subs
	id      []string
	box     []Box
	hasBox  []bool
	created []int64 // Unix seconds; 0 when unknown
}

func (r *rows) len() int { return len(r.owner) }

func (r *rows) descriptor(i int32) []float32 {
	return r.desc[int(i)*DescriptorLen : int(i+1)*DescriptorLen : int(i+1)*DescriptorLen]
}

// New returns an empty gallery.
func New() *Gallery { return &Gallery{byName: map[string]int32{}} }

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

// MaxFaceIDLen is the longest face id, in bytes.
const MaxFaceIDLen = 64

func validFaceID(id string) bool {
	if id == "" || len(id) > MaxFaceIDLen {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
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

// face is one face on its way into the gallery.
type face struct {
	desc []float32
	info FaceInfo
}

// subjectIndex returns name's slot, creating it; the caller holds the write lock.
func (g *Gallery) subjectIndex(name string) int32 {
	if i, ok := g.byName[name]; ok {
		return i
	}
	name = strings.Clone(name) // callers' strings may alias reused buffers (fasthttp)
	var i int32
	if n := len(g.free); n > 0 {
		i, g.free = g.free[n-1], g.free[:n-1]
		g.subs[i] = subject{name: name}
	} else {
		i = int32(len(g.subs))
		g.subs = append(g.subs, subject{name: name})
	}
	g.byName[name] = i
	return i
}

// appendFace adds one row for subject s; the caller holds the write lock and
// has checked the descriptor.
func (g *Gallery) appendFace(s int32, f face) {
	r := &g.r
	row := int32(r.len())
	r.desc = append(r.desc, f.desc...)
	start := len(r.q)
	r.q = slices.Grow(r.q, DescriptorLen)[:start+DescriptorLen]
	r.qerr = append(r.qerr, quantize(r.q[start:], f.desc))
	r.owner = append(r.owner, s)
	r.id = append(r.id, strings.Clone(f.info.ID))
	var b Box
	if f.info.Box != nil {
		b = *f.info.Box
	}
	r.box = append(r.box, b)
	r.hasBox = append(r.hasBox, f.info.Box != nil)
	var created int64
	if !f.info.Created.IsZero() {
		created = f.info.Created.Unix()
	}
	r.created = append(r.created, created) // 0: unknown
	g.subs[s].rows = append(g.subs[s].rows, row)
}

// removeRow deletes row i: the last row moves into its place (its subject's row
// list is updated) and the subject forgets i. The caller holds the write lock
// and removes the subject itself when it has no rows left.
func (g *Gallery) removeRow(i int32) {
	r := &g.r
	s := &g.subs[r.owner[i]]
	s.rows = slices.DeleteFunc(s.rows, func(x int32) bool { return x == i })
	last := int32(r.len() - 1)
	if i != last {
		copy(r.descriptor(i), r.descriptor(last))
		copy(r.q[int(i)*DescriptorLen:int(i+1)*DescriptorLen], r.q[int(last)*DescriptorLen:])
		r.qerr[i], r.owner[i], r.id[i] = r.qerr[last], r.owner[last], r.id[last]
		r.box[i], r.hasBox[i], r.created[i] = r.box[last], r.hasBox[last], r.created[last]
		moved := g.subs[r.owner[i]].rows
		if j := slices.Index(moved, last); j >= 0 {
			moved[j] = i
		}
	}
	r.desc = r.desc[:int(last)*DescriptorLen]
	r.q = r.q[:int(last)*DescriptorLen]
	r.qerr, r.owner, r.id = r.qerr[:last], r.owner[:last], r.id[:last]
	r.box, r.hasBox, r.created = r.box[:last], r.hasBox[:last], r.created[:last]
}

// dropSubject forgets subject slot s (its rows must be gone or moved).
func (g *Gallery) dropSubject(s int32) {
	delete(g.byName, g.subs[s].name)
	g.subs[s] = subject{}
	g.free = append(g.free, s)
}

// removeSubjectRows removes every row of s, then s.
func (g *Gallery) removeSubjectRows(s int32) {
	for len(g.subs[s].rows) > 0 {
		rs := g.subs[s].rows
		g.removeRow(rs[len(rs)-1])
	}
	g.dropSubject(s)
}

// Add enrols descriptors for name (appending to any it has).
func (g *Gallery) Add(name string, descriptors ...[]float32) error {
	now := time.Now().UTC().Truncate(time.Second)
	faces := make([]face, len(descriptors))
	for i, d := range descriptors {
		faces[i] = face{desc: d, info: FaceInfo{ID: NewFaceID(), Created: now}}
	}
	return g.addFaces(name, faces)
}

// AddFace enrols one descriptor for name with the box it came from (nil: none)
// and returns the new face's id.
func (g *Gallery) AddFace(name string, d []float32, box *Box) (string, error) {
	info := FaceInfo{ID: NewFaceID(), Box: box, Created: time.Now().UTC().Truncate(time.Second)}
	if err := g.addFaces(name, []face{{desc: d, info: info}}); err != nil {
		return "", err
	}
	return info.ID, nil
}

// addFaces enrols faces that already have ids (the Store's journal replays
// them with the ids the writer chose).
func (g *Gallery) addFaces(name string, faces []face) error {
	if err := ValidName(name); err != nil {
		return fmt.Errorf("gallery: subject %q: %w", name, err)
	}
	if len(faces) == 0 {
		return fmt.Errorf("gallery: no descriptors given for %q", name)
	}
	for i, f := range faces {
		if err := checkDescriptor(f.desc); err != nil {
			return fmt.Errorf("gallery: descriptor %d of %q: %w", i, name, err)
		}
		if !validFaceID(f.info.ID) {
			return fmt.Errorf("gallery: face %d of %q has a malformed id %q", i, name, f.info.ID)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.subjectIndex(name)
	for _, f := range faces {
		g.appendFace(s, f)
	}
	return nil
}

// PutSubject replaces subject s.Name with s (its faces keep their ids).
func (g *Gallery) PutSubject(s Subject) error {
	faces, err := subjectFaces(s)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.putLocked(s.Name, faces)
	return nil
}

func (g *Gallery) putLocked(name string, faces []face) {
	if i, ok := g.byName[name]; ok {
		g.removeSubjectRows(i)
	}
	i := g.subjectIndex(name)
	for _, f := range faces {
		g.appendFace(i, f)
	}
}

// subjectFaces checks a file's subject and builds its faces.
func subjectFaces(s Subject) ([]face, error) {
	if err := ValidName(s.Name); err != nil {
		return nil, fmt.Errorf("gallery: subject %q: %w", s.Name, err)
	}
	if len(s.Descriptors) == 0 {
		return nil, fmt.Errorf("gallery: no descriptors given for %q", s.Name)
	}
	if s.Faces != nil && len(s.Faces) != len(s.Descriptors) {
		return nil, fmt.Errorf("gallery: %q has %d descriptors but %d faces", s.Name, len(s.Descriptors), len(s.Faces))
	}
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
		if !validFaceID(info.ID) || slices.ContainsFunc(out[:i], func(f face) bool { return f.info.ID == info.ID }) {
			return nil, fmt.Errorf("gallery: face %d of %q has a missing, malformed or repeated id %q", i, s.Name, info.ID)
		}
		out[i] = face{desc: d, info: info}
	}
	return out, nil
}

// info is row i's FaceInfo; the caller holds a lock.
func (g *Gallery) info(i int32) FaceInfo {
	r := &g.r
	f := FaceInfo{ID: r.id[i]}
	if r.hasBox[i] {
		b := r.box[i]
		f.Box = &b
	}
	if r.created[i] != 0 {
		f.Created = time.Unix(r.created[i], 0).UTC()
	}
	return f
}

// Faces lists subject's faces in enrollment order; ok is false when the
// subject is not enrolled.
func (g *Gallery) Faces(subject string) (faces []FaceInfo, ok bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	s, ok := g.byName[subject]
	if !ok {
		return nil, false
	}
	for _, i := range g.subs[s].rows {
		faces = append(faces, g.info(i))
	}
	return faces, true
}

// FaceCount is the number of faces subject has (0 when not enrolled).
func (g *Gallery) FaceCount(subject string) int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if s, ok := g.byName[subject]; ok {
		return len(g.subs[s].rows)
	}
	return 0
}

// HasFace reports whether subject has a face with that id.
func (g *Gallery) HasFace(subject, id string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	s, ok := g.byName[subject]
	return ok && slices.ContainsFunc(g.subs[s].rows, func(i int32) bool { return g.r.id[i] == id })
}

// RemoveFace deletes one face of subject by id; the subject goes with its last
// face. It reports whether the face was there.
func (g *Gallery) RemoveFace(subject, id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.byName[subject]
	if !ok {
		return false
	}
	for _, i := range g.subs[s].rows {
		if g.r.id[i] == id {
			g.removeRow(i)
			if len(g.subs[s].rows) == 0 {
				g.dropSubject(s)
			}
			return true
		}
	}
	return false
}

// Remove deletes a subject; it reports whether it was there.
func (g *Gallery) Remove(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.byName[name]
	if ok {
		g.removeSubjectRows(s)
	}
	return ok
}

// Rename gives subject from the name to; when to is already enrolled, from's
// faces are appended to it (merged). ok is false when from is not enrolled.
func (g *Gallery) Rename(from, to string) (merged, ok bool, err error) {
	if err := ValidName(to); err != nil {
		return false, false, fmt.Errorf("gallery: subject %q: %w", to, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.byName[from]
	if !ok {
		return false, false, nil
	}
	if from == to {
		return false, true, nil
	}
	t, merged := g.byName[to]
	if !merged {
		delete(g.byName, from)
		to = strings.Clone(to)
		g.subs[s].name = to
		g.byName[to] = s
		return false, true, nil
	}
	for _, i := range g.subs[s].rows {
		g.r.owner[i] = t
	}
	g.subs[t].rows = append(g.subs[t].rows, g.subs[s].rows...)
	g.subs[s].rows = nil
	g.dropSubject(s)
	return true, true, nil
}

// Descriptors returns copies of subject's descriptors (nil when not enrolled).
func (g *Gallery) Descriptors(subject string) [][]float32 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	s, ok := g.byName[subject]
	if !ok {
		return nil
	}
	var out [][]float32
	for _, i := range g.subs[s].rows {
		out = append(out, slices.Clone(g.r.descriptor(i)))
	}
	return out
}

// Names lists the subjects' names, sorted.
func (g *Gallery) Names() []string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.namesLocked()
}

func (g *Gallery) namesLocked() []string {
	out := make([]string, 0, len(g.byName))
	for name := range g.byName {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Subject returns one subject (descriptors are copies); ok is false when it is
// not enrolled.
func (g *Gallery) Subject(name string) (Subject, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	s, ok := g.byName[name]
	if !ok {
		return Subject{}, false
	}
	return g.subjectLocked(s), true
}

func (g *Gallery) subjectLocked(s int32) Subject {
	out := Subject{Name: g.subs[s].name}
	for _, i := range g.subs[s].rows {
		out.Descriptors = append(out.Descriptors, slices.Clone(g.r.descriptor(i)))
		out.Faces = append(out.Faces, g.info(i))
	}
	return out
}

// Subjects lists the subjects, sorted by name (descriptors are copies).
func (g *Gallery) Subjects() []Subject {
	g.mu.RLock()
	defer g.mu.RUnlock()
	names := g.namesLocked()
	out := make([]Subject, len(names))
	for k, name := range names {
		out[k] = g.subjectLocked(g.byName[name])
	}
	return out
}

// Len is the number of subjects.
func (g *Gallery) Len() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.byName)
}

// FaceTotal is the number of faces of all subjects.
func (g *Gallery) FaceTotal() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.r.len()
}

// Clone is an independent copy.
func (g *Gallery) Clone() *Gallery {
	g.mu.RLock()
	defer g.mu.RUnlock()
	c := &Gallery{
		r: rows{
			desc: slices.Clone(g.r.desc), q: slices.Clone(g.r.q), qerr: slices.Clone(g.r.qerr),
			owner: slices.Clone(g.r.owner), id: slices.Clone(g.r.id), box: slices.Clone(g.r.box),
			hasBox: slices.Clone(g.r.hasBox), created: slices.Clone(g.r.created),
		},
		subs:   make([]subject, len(g.subs)),
		free:   slices.Clone(g.free),
		byName: make(map[string]int32, len(g.byName)),
	}
	for i, s := range g.subs {
		c.subs[i] = subject{name: s.name, rows: slices.Clone(s.rows)}
	}
	for k, v := range g.byName {
		c.byName[k] = v
	}
	return c
}

// Largest is the face the service names and enrolls: the one with the largest
// box among those with a descriptor; nil when none has one. The CLI and the
// worker answer for this face and enroll it (one definition for both; the web
// tier applies the same rule to the API's faces through LargestIndex).
func Largest(faces []engine.Face) *engine.Face {
	i := LargestIndex(len(faces), func(i int) (float64, float64, bool) {
		return faces[i].Box.W, faces[i].Box.H, len(faces[i].Descriptor) > 0
	})
	if i < 0 {
		return nil
	}
	return &faces[i]
}

// LargestIndex is the rule behind Largest for any list of faces: the index of
// the face with the largest box area (w x h) among those face(i) calls
// eligible, the first of equal areas; -1 when none is.
func LargestIndex(n int, face func(i int) (w, h float64, eligible bool)) int {
	best, bestArea := -1, 0.0
	for i := range n {
		w, h, ok := face(i)
		if ok && (best < 0 || w*h > bestArea) {
			best, bestArea = i, w*h
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
