package sim

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WritePlots writes DIR/<workload>_<policy>.svg for every result: queue depth
// (visible + in flight, left axis) and instances pending or running (right axis)
// over time.
func WritePlots(dir string, rs []Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sim: plot directory: %w", err)
	}
	for _, r := range rs {
		name := safeName(r.Workload) + "_" + safeName(r.Policy) + ".svg"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(svgPlot(r)), 0o644); err != nil {
			return fmt.Errorf("sim: writing plot: %w", err)
		}
	}
	return nil
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

const (
	plotW, plotH       = 900, 320
	padL, padR         = 60, 60
	padTop, padBottom  = 40, 40
	innerW, innerH     = plotW - padL - padR, plotH - padTop - padBottom
	maxPlottedColumns  = innerW * 2
	backlogColour      = "#1f77b4"
	capacityColour     = "#d62728"
	gridColour, axisFg = "#ddd", "#333"
)

func svgPlot(r Result) string {
	pts := r.Timeline
	tMax, bMax, cMax := 1.0, 1, 1
	for _, p := range pts {
		tMax = max(tMax, p.T)
		bMax = max(bMax, p.Backlog)
		cMax = max(cMax, p.Capacity)
	}
	// Round the axes up to multiples of the 4 grid steps so every tick is a whole
	// number (a fleet of 1 would otherwise read 1, 0, 0, 0, 0).
	bMax, cMax = (bMax+3)/4*4, (cMax+3)/4*4
	x := func(t float64) float64 { return padL + t/tMax*innerW }
	yb := func(v int) float64 { return padTop + innerH - float64(v)/float64(bMax)*innerH }
	yc := func(v int) float64 { return padTop + innerH - float64(v)/float64(cMax)*innerH }

	// Step lines, thinned to one column per pixel so long runs stay small: each
	// column rises to its peak and ends at its last value (so a queue that drains
	// inside a column is drawn at 0 afterwards, not at its peak).
	var bl, cl strings.Builder
	col, colB, colC, endB, endC := -1, 0, 0, 0, 0
	lastB, lastC := 0, 0
	flush := func() {
		if col < 0 {
			return
		}
		t := float64(col) / maxPlottedColumns * tMax
		fmt.Fprintf(&bl, "%.1f,%.1f %.1f,%.1f %.1f,%.1f ", x(t), yb(lastB), x(t), yb(colB), x(t), yb(endB))
		fmt.Fprintf(&cl, "%.1f,%.1f %.1f,%.1f %.1f,%.1f ", x(t), yc(lastC), x(t), yc(colC), x(t), yc(endC))
		lastB, lastC = endB, endC
	}
	for _, p := range pts {
		c := int(p.T / tMax * maxPlottedColumns)
		if c != col {
			flush()
			col, colB, colC = c, p.Backlog, p.Capacity
		}
		colB, colC = max(colB, p.Backlog), max(colC, p.Capacity)
		endB, endC = p.Backlog, p.Capacity
	}
	flush()
	fmt.Fprintf(&bl, "%.1f,%.1f", x(tMax), yb(lastB))
	fmt.Fprintf(&cl, "%.1f,%.1f", x(tMax), yc(lastC))

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", plotW, plotH, plotW, plotH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" fill="%s">%s / %s: p95 %.1f s, drain %.1f s, billed %.0f instance-s, busy stops %d, flaps %d</text>`+"\n",
		padL, axisFg, esc(r.Workload), esc(r.Policy), r.P95S, r.DrainS, r.BilledInstanceSeconds, r.BusyStops, r.Flaps)
	for i := 0; i <= 4; i++ {
		y := padTop + float64(innerH)*float64(i)/4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s"/>`+"\n", padL, padL+innerW, y, y, gridColour)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="%s">%d</text>`+"\n", padL-6, y+4, backlogColour, bMax*(4-i)/4)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="%s">%d</text>`+"\n", padL+innerW+6, y+4, capacityColour, cMax*(4-i)/4)
	}
	for i := 0; i <= 5; i++ {
		t := tMax * float64(i) / 5
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="%s">%.0f s</text>`+"\n", x(t), plotH-padBottom+16, axisFg, t)
	}
	fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", backlogColour, bl.String())
	fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", capacityColour, cl.String())
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">queue depth (visible + in flight)</text>`+"\n", padL, plotH-8, backlogColour)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="%s">instances (pending + running)</text>`+"\n", padL+innerW, plotH-8, capacityColour)
	b.WriteString("</svg>\n")
	return b.String()
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
