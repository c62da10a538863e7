// Command benchgallery measures the gallery at scale (`make bench-gallery`):
// a synthetic gallery of -subjects x -faces descriptors is stored as a worker
// finds it (a gallery.Store snapshot in a file store on disk, under -dir),
// opened by a fresh Store as a starting worker opens it (load_s: list, read,
// decode), and searched for the nearest face on one core (match_p50_ms over
// -queries probes, each checked against brute force for the first -check);
// rss_mb is the process's resident memory with the loaded gallery, against
// raw_mb, the descriptors' own bytes.
//
// The descriptors are synthetic, shaped like dlib's: each subject a random
// centre, each face the centre plus noise, scaled so that faces of one subject
// lie about 0.45 apart and different subjects about 0.83 (the shared faces'
// medians, README). Probes are new faces of enrolled subjects.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/blob/fileblob"
)

func main() {
	subjects := flag.Int("subjects", 100_000, "subjects in the gallery")
	faces := flag.Int("faces", 5, "faces per subject")
	queries := flag.Int("queries", 200, "nearest-face probes")
	seed := flag.Uint64("seed", 1, "random seed")
	dir := flag.String("dir", "", "folder for the file store (default: a temporary folder, removed after)")
	flag.Parse()
	if err := run(*subjects, *faces, *queries, *seed, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "benchgallery:", err)
		os.Exit(1)
	}
}

func run(subjects, faces, queries int, seed uint64, dir string) error {
	if subjects < 1 || faces < 1 || queries < 1 {
		return fmt.Errorf("-subjects %d, -faces %d, -queries %d: all must be at least 1", subjects, faces, queries)
	}
	rng := rand.New(rand.NewPCG(seed, 2))
	const dim = gallery.DescriptorLen
	// Per-dimension spreads: centre spread and face noise (see the package doc).
	sigmaFace := 0.45 / math.Sqrt(2*dim)
	sigmaSubj := math.Sqrt(0.83*0.83/(2*dim) - sigmaFace*sigmaFace)
	centres := make([][]float32, subjects)
	face := func(c []float32) []float32 {
		d := make([]float32, dim)
		for i := range d {
			d[i] = c[i] + float32(rng.NormFloat64()*sigmaFace)
		}
		return d
	}
	g := gallery.New()
	for s := range subjects {
		c := make([]float32, dim)
		for i := range c {
			c[i] = float32(rng.NormFloat64() * sigmaSubj)
		}
		centres[s] = c
		ds := make([][]float32, faces)
		for f := range ds {
			ds[f] = face(c)
		}
		if err := g.Add("subject-"+strconv.Itoa(s), ds...); err != nil {
			return err
		}
	}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "benchgallery-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	store, err := fileblob.New(dir)
	if err != nil {
		return err
	}
	ctx := context.Background()
	writer, err := gallery.OpenStore(ctx, store, "", gallery.StoreOptions{})
	if err != nil {
		return err
	}
	if _, err := writer.Apply(ctx, gallery.Edit{Op: gallery.OpReplace, Faces: g}); err != nil {
		return err
	}
	if err := writer.Compact(ctx); err != nil { // a snapshot of entry 1
		return err
	}
	writer.Close()
	writer, g = nil, nil
	runtime.GC()
	debug.FreeOSMemory()

	t0 := time.Now()
	reader, err := gallery.OpenStore(ctx, store, "", gallery.StoreOptions{})
	if err != nil {
		return err
	}
	load := time.Since(t0)
	loaded := reader.Gallery()
	objs, err := store.List(ctx, gallery.DefaultStorePrefix)
	if err != nil {
		return err
	}
	var fileMB float64
	for _, o := range objs {
		if strings.Contains(o.Key, "/snapshot/") {
			fileMB += float64(o.Size) / (1 << 20)
		}
	}
	runtime.GC()
	debug.FreeOSMemory()
	rss := rssMB()

	// Each probe is answered twice on one core: by the two-pass search and by
	// measuring every face (the baseline); the answers must be identical.
	prev := runtime.GOMAXPROCS(1)
	var lat, base []float64
	right := 0
	for range queries {
		s := rng.IntN(subjects)
		p := face(centres[s])
		t := time.Now()
		name, dist := loaded.Nearest(p)
		lat = append(lat, float64(time.Since(t).Microseconds())/1000)
		t = time.Now()
		bname, bdist := loaded.NearestExhaustive(p)
		base = append(base, float64(time.Since(t).Microseconds())/1000)
		if name != bname || dist != bdist {
			return fmt.Errorf("probe of subject %d: Nearest %s %v, exhaustive %s %v", s, name, dist, bname, bdist)
		}
		if name == "subject-"+strconv.Itoa(s) {
			right++
		}
	}
	runtime.GOMAXPROCS(prev)
	slices.Sort(lat)
	slices.Sort(base)
	raw := float64(subjects*faces*dim*4) / (1 << 20)
	fmt.Fprintf(os.Stderr, "gallery snapshot %.0f MB, raw descriptors %.0f MB, probes named right %d/%d (all equal to the exhaustive answer), match p90 %.2f ms, first pass %s\n",
		fileMB, raw, right, queries, lat[len(lat)*9/10], gallery.ScanPath)
	fmt.Fprintf(os.Stderr, "baseline (every face measured, same probes, same run): p50 %.2f ms; two-pass search %.1fx faster\n",
		base[len(base)/2], base[len(base)/2]/lat[len(lat)/2])
	fmt.Printf("match_p50_ms=%.2f load_s=%.2f rss_mb=%.0f faces=%d\n", lat[len(lat)/2], load.Seconds(), rss, subjects*faces)
	runtime.KeepAlive(loaded)
	return nil
}

// rssMB is this process's resident set size (Linux /proc; -1 elsewhere).
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return -1
}
