// Command benchgallery measures the gallery at scale (`make bench-gallery`):
// a synthetic gallery of -subjects x -faces descriptors is written in the
// stored format, loaded back (load_s), and searched for the nearest face on one
// core (match_p50_ms over -queries probes); rss_mb is the process's resident
// memory with the loaded gallery, against raw_mb, the descriptors' own bytes.
//
// The descriptors are synthetic, shaped like dlib's: each subject a random
// centre, each face the centre plus noise, scaled so that faces of one subject
// lie about 0.45 apart and different subjects about 0.83 (the shared faces'
// medians, README). Probes are new faces of enrolled subjects.
package main

import (
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
)

func main() {
	subjects := flag.Int("subjects", 100_000, "subjects in the gallery")
	faces := flag.Int("faces", 5, "faces per subject")
	queries := flag.Int("queries", 200, "nearest-face probes")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if err := run(*subjects, *faces, *queries, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "benchgallery:", err)
		os.Exit(1)
	}
}

func run(subjects, faces, queries int, seed uint64) error {
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
	data, err := g.Marshal()
	if err != nil {
		return err
	}
	g = nil
	runtime.GC()

	t0 := time.Now()
	loaded, err := gallery.Unmarshal(data)
	if err != nil {
		return err
	}
	probe := face(centres[0])
	loaded.Nearest(probe) // builds the matching matrix: part of loading
	load := time.Since(t0)
	fileMB := float64(len(data)) / (1 << 20)
	data = nil
	debug.FreeOSMemory()
	rss := rssMB()

	prev := runtime.GOMAXPROCS(1)
	var lat []float64
	right := 0
	for q := range queries {
		s := rng.IntN(subjects)
		p := face(centres[s])
		t := time.Now()
		name, _ := loaded.Nearest(p)
		lat = append(lat, float64(time.Since(t).Microseconds())/1000)
		if name == "subject-"+strconv.Itoa(s) {
			right++
		}
		_ = q
	}
	runtime.GOMAXPROCS(prev)
	slices.Sort(lat)
	raw := float64(subjects*faces*dim*4) / (1 << 20)
	fmt.Fprintf(os.Stderr, "gallery file %.0f MB, raw descriptors %.0f MB, probes named right %d/%d, match p90 %.2f ms\n",
		fileMB, raw, right, queries, lat[len(lat)*9/10])
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
