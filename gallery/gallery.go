// Package gallery holds the enrolled people: named subjects with one or more 128-D
// face descriptors, matched by Euclidean distance. Its on-disk form is versioned JSON
// so the service can keep it in a blob store and reload it when it changes.
//
// A Gallery is safe for concurrent use: Match takes a read lock, edits a write lock.
package gallery

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
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
}

// Gallery is a set of subjects.
type Gallery struct {
	mu       sync.RWMutex
	subjects map[string][][]float32
}

// New returns an empty gallery.
func New() *Gallery { return &Gallery{subjects: map[string][][]float32{}} }

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
	for _, d := range descriptors {
		g.subjects[name] = append(g.subjects[name], slices.Clone(d))
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

// Remove deletes a subject; it reports whether it was there.
func (g *Gallery) Remove(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.subjects[name]
	delete(g.subjects, name)
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
	return merged, true, nil
}

// Descriptors returns copies of subject's descriptors (nil when not enrolled).
func (g *Gallery) Descriptors(subject string) [][]float32 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	var out [][]float32
	for _, d := range g.subjects[subject] {
		out = append(out, slices.Clone(d))
	}
	return out
}

// Subjects lists the subjects, sorted by name (descriptors are copies).
func (g *Gallery) Subjects() []Subject {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]Subject, 0, len(g.subjects))
	for name, ds := range g.subjects {
		s := Subject{Name: name}
		for _, d := range ds {
			s.Descriptors = append(s.Descriptors, slices.Clone(d))
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
	distance = math.Inf(1)
	if len(d) != DescriptorLen {
		return "", distance
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	for n, ds := range g.subjects {
		for _, e := range ds {
			dist := Distance(d, e)
			if dist < distance || (dist == distance && n < name) {
				name, distance = n, dist
			}
		}
	}
	return name, distance
}

// Distance is the Euclidean distance between two descriptors of equal length.
func Distance(a, b []float32) float64 {
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
		if err := g.Add(s.Name, s.Descriptors...); err != nil {
			return nil, fmt.Errorf("gallery: bad file: %w", err)
		}
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
