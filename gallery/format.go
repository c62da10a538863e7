package gallery

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"sync"

	"github.com/facefleet/facefleet/internal/bigalloc"
)

// BinaryVersion is the binary format this package writes and reads.
const BinaryVersion = 2

// binaryMagic starts every binary gallery.
var binaryMagic = [8]byte{'F', 'F', 'G', 'A', 'L', 'L', 'R', 'Y'}

// Limits a decoded file must respect before anything is allocated for it.
const (
	// MaxFaces is the most faces one gallery may hold (16x the 500,000 the
	// benchmark measures; 4 GB of descriptors).
	MaxFaces = 8_000_000
	// MaxSnapshotBytes bounds a binary gallery of MaxFaces faces (descriptor,
	// id, time and box of each, and generous room for names): what a store
	// must be able to read back.
	MaxSnapshotBytes = MaxFaces * (DescriptorLen*4 + 1 + MaxFaceIDLen + 8 + 1 + 32 + 2 + MaxNameLen + 4)
)

type fileFormat struct {
	Version  int       `json:"version"`
	Subjects []Subject `json:"subjects"`
}

// Marshal encodes the gallery in the versioned JSON format (version 1): what
// `facefleet enroll` writes and GET /v1/gallery exports.
func (g *Gallery) Marshal() ([]byte, error) {
	return json.MarshalIndent(fileFormat{Version: Version, Subjects: g.Subjects()}, "", " ")
}

// MarshalBinary encodes the gallery in the binary format (version 2).
func (g *Gallery) MarshalBinary() ([]byte, error) { return g.appendBinary(nil, 0), nil }

// The binary format, little-endian throughout:
//
//	magic "FFGALLRY" | version u32 (2) | flags u32 (0) | seq u64 | subjects u32 | faces u64
//	per subject, in name order: name len u16 | name | faces u32
//	    per face: id len u8 | id | created i64 (Unix s, 0 unknown) | has box u8 | [x y w h f64]
//	pad len u8 | pad zeros, so the descriptors start at a multiple of 4 bytes
//	descriptors: faces x 128 f32, in the same order
//	crc32c u32 of everything before it
//
// seq is the journal position a Store snapshot covers (0 elsewhere).
func (g *Gallery) appendBinary(b []byte, seq uint64) []byte {
	g.mu.RLock()
	defer g.mu.RUnlock()
	names := g.namesLocked()
	n := g.r.len()
	size := len(b) + 36 + n*(DescriptorLen*4+1+8+1+32) + 4 + 4
	for _, name := range names {
		size += 2 + len(name) + 4
	}
	for _, id := range g.r.id {
		size += len(id)
	}
	b = growTo(b, size)
	start := len(b)
	b = append(b, binaryMagic[:]...)
	b = binary.LittleEndian.AppendUint32(b, BinaryVersion)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(names)))
	b = binary.LittleEndian.AppendUint64(b, uint64(n))
	order := make([]int32, 0, n)
	for _, name := range names {
		s := g.subs[g.byName[name]]
		b = binary.LittleEndian.AppendUint16(b, uint16(len(name)))
		b = append(b, name...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s.rows)))
		for _, i := range s.rows {
			order = append(order, i)
			b = append(b, byte(len(g.r.id[i])))
			b = append(b, g.r.id[i]...)
			b = binary.LittleEndian.AppendUint64(b, uint64(g.r.created[i]))
			if !g.r.hasBox[i] {
				b = append(b, 0)
				continue
			}
			b = append(b, 1)
			bx := g.r.box[i]
			for _, v := range [4]float64{bx.X, bx.Y, bx.W, bx.H} {
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
			}
		}
	}
	pad := (4 - (len(b)-start+1)%4) % 4
	b = append(b, byte(pad))
	b = append(b, make([]byte, pad)...)
	for _, i := range order {
		b = appendFloats(b, g.r.descriptor(i))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

func growTo(b []byte, n int) []byte {
	if cap(b) >= n {
		return b
	}
	c := make([]byte, len(b), n)
	copy(c, b)
	return c
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32Sum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// IsBinary reports whether data starts like a binary gallery.
func IsBinary(data []byte) bool { return bytes.HasPrefix(data, binaryMagic[:]) }

// reader walks a binary gallery, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = fmt.Errorf("gallery: binary file truncated in %s", what)
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8(what string) uint8 {
	if b := r.take(1, what); b != nil {
		return b[0]
	}
	return 0
}
func (r *reader) u16(what string) uint16 {
	if b := r.take(2, what); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}
func (r *reader) u32(what string) uint32 {
	if b := r.take(4, what); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}
func (r *reader) u64(what string) uint64 {
	if b := r.take(8, what); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

// unmarshalBinary decodes a binary gallery and the seq it was written with.
// The gallery copies what it keeps from data.
func unmarshalBinary(data []byte) (*Gallery, uint64, error) { return decodeBinary(data, false) }

// decodeBinary is unmarshalBinary; with owned, data is the caller's to give
// away (a fresh blob.Get), and the gallery keeps its descriptors in place
// instead of copying them: loading half a million faces then allocates no
// second 256 MB. Names and ids are copied, so the rest of data is freed once
// the descriptors move (the first enrollment after loading). data must not be
// written afterwards.
func decodeBinary(data []byte, owned bool) (*Gallery, uint64, error) {
	if len(data) < len(binaryMagic)+4+4 {
		return nil, 0, errors.New("gallery: binary file truncated in the header")
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	r := &reader{b: body[len(binaryMagic):]}
	if v := r.u32("header"); v != BinaryVersion {
		return nil, 0, fmt.Errorf("gallery: unsupported binary format version %d (this build reads version %d); re-export it or upgrade facefleet", v, BinaryVersion)
	}
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, 0, errors.New("gallery: binary file is corrupt (checksum mismatch)")
	}
	if f := r.u32("header"); f != 0 {
		return nil, 0, fmt.Errorf("gallery: binary file has unknown flags %#x", f)
	}
	seq := r.u64("header")
	nsub := r.u32("header")
	nfaces := r.u64("header")
	if r.err != nil {
		return nil, 0, r.err
	}
	if nfaces > MaxFaces {
		return nil, 0, fmt.Errorf("gallery: binary file holds %d faces; the limit is %d", nfaces, MaxFaces)
	}
	// Every face needs at least 128*4+11 bytes and every subject 7: refuse
	// counts the data cannot hold before allocating for them.
	if uint64(nsub)*7+nfaces*(DescriptorLen*4+11) > uint64(len(r.b)) {
		return nil, 0, errors.New("gallery: binary file truncated (counts exceed its size)")
	}
	n := int(nfaces)
	g := New()
	g.r = rows{
		q:    bigalloc.Slice[int8](n * DescriptorLen),
		qerr: bigalloc.Slice[float32](n), owner: bigalloc.Slice[int32](n), id: make([]string, n),
		box: bigalloc.Slice[Box](n), hasBox: make([]bool, n), created: bigalloc.Slice[int64](n),
	}
	g.subs = make([]subject, 0, nsub)
	row := 0
	prev := ""
	for k := range nsub {
		name := string(r.take(int(r.u16("a subject name")), "a subject name"))
		count := int(r.u32("a subject's face count"))
		if r.err != nil {
			return nil, 0, r.err
		}
		if err := ValidName(name); err != nil {
			return nil, 0, fmt.Errorf("gallery: bad file: subject %q: %w", name, err)
		}
		if k > 0 && name <= prev {
			return nil, 0, fmt.Errorf("gallery: bad file: subject %q out of order or repeated", name)
		}
		prev = name
		if count == 0 || count > n-row {
			return nil, 0, fmt.Errorf("gallery: bad file: subject %q has %d faces", name, count)
		}
		s := int32(len(g.subs))
		rs := make([]int32, count)
		for j := range rs {
			id := string(r.take(int(r.u8("a face id")), "a face id"))
			created := int64(r.u64("a face"))
			has := r.u8("a face")
			if has == 1 {
				var v [4]float64
				for i := range v {
					v[i] = math.Float64frombits(r.u64("a face box"))
				}
				g.r.box[row] = Box{X: v[0], Y: v[1], W: v[2], H: v[3]}
				g.r.hasBox[row] = true
			} else if has != 0 {
				return nil, 0, fmt.Errorf("gallery: bad file: face %d of %q has box flag %d", j, name, has)
			}
			if r.err != nil {
				return nil, 0, r.err
			}
			if !validFaceID(id) {
				return nil, 0, fmt.Errorf("gallery: bad file: face %d of %q has a malformed id %q", j, name, id)
			}
			for _, x := range rs[:j] {
				if g.r.id[x] == id {
					return nil, 0, fmt.Errorf("gallery: bad file: face id %q repeated in %q", id, name)
				}
			}
			g.r.id[row], g.r.created[row], g.r.owner[row] = id, created, s
			rs[j] = int32(row)
			row++
		}
		g.subs = append(g.subs, subject{name: name, rows: rs})
		g.byName[name] = s
	}
	if row != n {
		return nil, 0, fmt.Errorf("gallery: bad file: subjects hold %d faces, header says %d", row, n)
	}
	pad := int(r.u8("the padding"))
	if p := r.take(pad, "the padding"); r.err == nil && (pad > 3 || !bytes.Equal(p, make([]byte, pad))) {
		return nil, 0, fmt.Errorf("gallery: bad file: padding of %d bytes", pad)
	}
	raw := r.take(n*DescriptorLen*4, "the descriptors")
	if r.err != nil {
		return nil, 0, r.err
	}
	if len(r.b) != 0 {
		return nil, 0, fmt.Errorf("gallery: bad file: %d unexpected bytes after the descriptors", len(r.b))
	}
	if g.r.desc = floatsIn(raw, owned); g.r.desc == nil {
		g.r.desc = bigalloc.Slice[float32](n * DescriptorLen)
		readFloats(g.r.desc, raw)
	}
	var bad sync.Map // row -> struct{}: the first bad row found by any part
	eachRowRange(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			d := g.r.descriptor(int32(i))
			if checkDescriptor(d) != nil {
				bad.Store(i, struct{}{})
				return
			}
			g.r.qerr[i] = quantize(g.r.q[i*DescriptorLen:], d)
		}
	})
	first := -1
	bad.Range(func(k, _ any) bool {
		if i := k.(int); first < 0 || i < first {
			first = i
		}
		return true
	})
	if first >= 0 {
		return nil, 0, fmt.Errorf("gallery: bad file: descriptor of face %q holds NaN or Inf", g.r.id[first])
	}
	return g, seq, nil
}

// Unmarshal decodes a gallery in either format (binary version 2 or JSON
// version 1). It rejects other versions and malformed content with an error
// that says what is wrong.
func Unmarshal(data []byte) (*Gallery, error) {
	if IsBinary(data) {
		g, _, err := unmarshalBinary(data)
		return g, err
	}
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("gallery: not a gallery file (not binary, and invalid JSON): %w", err)
	}
	if probe.Version == nil {
		return nil, errors.New("gallery: file has no version field; it was not written by facefleet")
	}
	if *probe.Version != Version {
		return nil, fmt.Errorf("gallery: unsupported format version %d (this build reads JSON version %d and binary version %d); re-enroll or upgrade facefleet", *probe.Version, Version, BinaryVersion)
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
		i := g.subjectIndex(s.Name)
		for _, fc := range faces {
			g.appendFace(i, fc)
		}
	}
	return g, nil
}

// Load reads a gallery file (either format).
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

// Save writes a gallery file atomically (temp file + rename) in the JSON
// format.
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
