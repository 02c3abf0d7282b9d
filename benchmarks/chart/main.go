// Command chart turns the output of the comparison benchmarks (results/bench.txt,
// as `make bench` writes it) into what benchmarks/README.md shows: an SVG chart of
// the key comparisons, a table of the median of every scenario for every
// library, and aside's standing against its targets, each computed from the
// one run. With -readme it rewrites the part of the README between the results
// markers with all of it, the machine and the versions, and the benchstat
// table; with -top-readme, the performance section of the repository's README
// (between its performance markers) with a summary of the same run.
//
//	go run ./chart -in results/bench.txt -svg results/chart.svg \
//		-benchstat results/benchstat.txt -readme README.md -top-readme ../README.md
//
// Scenarios absent from the input (BenchmarkLocalZipf and
// BenchmarkInvalidatePattern1M come from other packages and files) are left
// out of the chart and the tables, and their targets say "not in this run".
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"slices"
	"sort"
	"strings"

	"golang.org/x/perf/benchfmt"
)

func main() {
	in := flag.String("in", "results/bench.txt", "benchmark output to read")
	svg := flag.String("svg", "results/chart.svg", "chart to write")
	stat := flag.String("benchstat", "", "benchstat table to copy into the README")
	readme := flag.String("readme", "", "README whose results section to rewrite")
	chartRef := flag.String("chart-ref", "results/chart.svg", "path of the chart as the README links it")
	top := flag.String("top-readme", "", "repository README whose performance section to rewrite")
	flag.Parse()
	log.SetFlags(0)

	data, err := read(*in)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*svg, render(data), 0o644); err != nil {
		log.Fatal(err)
	}
	summary := markdown(data)
	if *top != "" {
		if err := splice(*top, topBegin, topEnd, performance(data)); err != nil {
			log.Fatal(err)
		}
	}
	if *readme == "" {
		fmt.Print(summary)
		return
	}
	var table []byte
	if *stat != "" {
		if table, err = os.ReadFile(*stat); err != nil {
			log.Fatal(err)
		}
	}
	if err := splice(*readme, beginMarker, endMarker, section(data, summary, string(table), *chartRef)); err != nil {
		log.Fatal(err)
	}
}

// libOrder is the order of the libraries in the chart and the tables; aside
// first, then aside with StaleWhileReloading (the mixes only), then from the
// rawest to the most featured.
var libOrder = []string{"aside", asideSWR, "rueidis", "rueidis-DoCache", "rueidisaside", "go-redis-cache", "go-redis-cache+LFU", "sturdyc"}

// asideSWR is aside with Options.StaleWhileReloading in the mixes: aside
// itself, so never one of aside's peers, and serving stale reads by design, so
// not held to aside's targets of 0 stale reads but to targets of its own
// against the peers that serve stale copies by design (staleByDesign).
const asideSWR = "aside+SWR-50ms"

// staleByDesign are the peers that keep copies in process memory which no
// change made elsewhere invalidates (go-redis/cache's TinyLFU for its minute,
// sturdyc for its TTL): asideSWR's baseline.
var staleByDesign = []string{"go-redis-cache+LFU", "sturdyc"}

// isAside reports whether lib is aside, in any configuration.
func isAside(lib string) bool { return lib == "aside" || lib == asideSWR }

// dataset holds every measurement by row (the benchmark name without its
// column part and GOMAXPROCS), column (the library, or the policy or method
// compared) and unit (as benchfmt tidies it: ns/op is sec/op, a unit ending
// in -MB ends in -B, in bytes), and the file configuration.
type dataset struct {
	values map[string]map[string]map[string][]float64
	rows   []string            // in order of first appearance
	cols   map[string][]string // each row's columns, in order of first appearance
	config []kv                // file configuration, first value of each key
}

type kv struct{ key, value string }

// cpuUnit is the CPU time of an operation, of the benchmark process and of
// Redis together: the sum of a run's app-µs/op and redis-µs/op.
const cpuUnit = "cpu-µs/op"

func read(path string) (*dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := &dataset{values: make(map[string]map[string]map[string][]float64), cols: make(map[string][]string)}
	seen := make(map[string]bool)
	r := benchfmt.NewReader(f, path)
	for r.Scan() {
		res, ok := r.Result().(*benchfmt.Result)
		if !ok {
			if e, ok := r.Result().(*benchfmt.SyntaxError); ok {
				log.Print(e)
			}
			continue
		}
		for _, c := range res.Config {
			if c.File && !seen[c.Key] {
				seen[c.Key] = true
				d.config = append(d.config, kv{c.Key, string(c.Value)})
			}
		}
		row, lib := split(res.Name)
		if lib == "" {
			continue
		}
		if d.values[row] == nil {
			d.values[row] = make(map[string]map[string][]float64)
			d.rows = append(d.rows, row)
		}
		if d.values[row][lib] == nil {
			d.values[row][lib] = make(map[string][]float64)
			d.cols[row] = append(d.cols[row], lib)
		}
		var app, redis float64
		var cpu int
		for _, v := range res.Values {
			d.values[row][lib][v.Unit] = append(d.values[row][lib][v.Unit], v.Value)
			switch v.Unit {
			case "app-µs/op":
				app, cpu = v.Value, cpu+1
			case "redis-µs/op":
				redis, cpu = v.Value, cpu+1
			}
		}
		if cpu == 2 {
			d.values[row][lib][cpuUnit] = append(d.values[row][lib][cpuUnit], app+redis)
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	if len(d.rows) == 0 {
		return nil, errors.New(path + ": no benchmark results")
	}
	return d, nil
}

// columnKeys are the sub-benchmark keys that name the thing compared: the
// library (lib=), the local-memory policy (policy=, BenchmarkLocalZipf), the
// way of invalidating (how=, BenchmarkInvalidatePattern1M).
var columnKeys = []string{"/lib=", "/policy=", "/how="}

// split takes "HitLocal/lib=aside-2" apart into "HitLocal" and "aside".
func split(name benchfmt.Name) (row, lib string) {
	base, parts := name.Parts()
	row = string(base)
parts:
	for _, p := range parts {
		s := string(p)
		for _, k := range columnKeys {
			if v, ok := strings.CutPrefix(s, k); ok {
				lib = v
				continue parts
			}
		}
		if !strings.HasPrefix(s, "-") { // GOMAXPROCS
			row += s
		}
	}
	return row, lib
}

// median of the samples of row, lib and unit; ok is false when there are none.
func (d *dataset) median(row, lib, unit string) (float64, bool) {
	xs := slices.Clone(d.values[row][lib][unit])
	if len(xs) == 0 {
		return 0, false
	}
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2], true
	}
	return (xs[n/2-1] + xs[n/2]) / 2, true
}

// max of the samples, for counts where the worst run matters.
func (d *dataset) max(row, lib, unit string) (float64, bool) {
	xs := d.values[row][lib][unit]
	if len(xs) == 0 {
		return 0, false
	}
	return slices.Max(xs), true
}

// libs returns the libraries measured in row, in libOrder, then the other
// columns of the row (policies, methods) in the order the input has them.
func (d *dataset) libs(row string) []string {
	var out []string
	for _, l := range libOrder {
		if _, ok := d.values[row][l]; ok {
			out = append(out, l)
		}
	}
	for _, l := range d.cols[row] {
		if !slices.Contains(libOrder, l) {
			out = append(out, l)
		}
	}
	return out
}

// ---- chart

// panel is one bar chart of the figure: one value of one row for every
// library that ran it; or, with xUnit set, a scatter of the libraries: the
// median of unit up, the worst run's xUnit across.
type panel struct {
	title, note string
	row, unit   string
	log         bool
	format      func(float64) string
	xUnit       string
}

// scatterH is the height of a scatter panel.
const scatterH = 250

var panels = []panel{
	{"Hit from process memory", "one goroutine · time per Get · lower is better", "HitLocal", "sec/op", true, duration, ""},
	{"Hit from process memory, parallel", "GOMAXPROCS goroutines · lower is better", "HitLocalParallel", "sec/op", true, duration, ""},
	{"Hit from Redis", "no copy in process memory · lower is better", "HitRedis", "sec/op", true, duration, ""},
	{"Miss", "absent key, loader returns at once · lower is better", "Miss", "sec/op", true, duration, ""},
	{"Batch of 100 keys, all cached", "time per batch · lower is better", "BatchCached", "sec/op", true, duration, ""},
	{"Batch of 100 keys, all missing", "time per batch · lower is better", "BatchMissing", "sec/op", true, duration, ""},
	{"Herd: loader calls", "16 instances × 8 goroutines, one cold key · target 1", "Herd/instances=16", "loads/op", true, count, ""},
	{"Mix: stale reads", "Zipf reads, 5% updates, 4 instances · target 0", "Mix", "stale-reads", true, count, ""},
	{"Mix: throughput", "same run · operations per second · higher is better", "Mix", "ops/s", true, count, ""},
	{"Mix at steady state: throughput", "every record read first · ops/s · higher is better", "MixSteady", "ops/s", true, count, ""},
	{"Mix at steady state: read latency, p99", "from every read's duration · lower is better", "MixSteady", "read-p99-µs", true, micros, ""},
	{"Mix at steady state: stale reads", "same run · target 0", "MixSteady", "stale-reads", true, count, ""},
	{"Mix at steady state, 128 goroutines", "4× the goroutines · ops/s · higher is better", "MixSteadyWide", "ops/s", true, count, ""},
	{"Mix at steady state: CPU per op", "this process and Redis · µs · lower is better", "MixSteady", cpuUnit, true, sig, ""},
	{"Throughput against staleness", "steady mix · ops/s up · oldest stale read (ms, log) across", "MixSteady", "ops/s", false, count, "max-stale-ms"},
	{"Throughput against staleness, 128 goroutines", "steady mix, 4× the goroutines · same axes", "MixSteadyWide", "ops/s", false, count, "max-stale-ms"},
	{"4 processes: throughput", "the mix in 4 OS processes · ops/s · higher is better", "MixProcs/procs=4", "ops/s", true, count, ""},
	{"4 processes: loader calls", "same run, all processes · lower is better", "MixProcs/procs=4", "loads", true, count, ""},
	{"4 processes: stale reads", "same run · target 0", "MixProcs/procs=4", "stale-reads", true, count, ""},
	{"Bounded local memory: hit ratio", "1M-record Zipf reads, budget for 10% · linear · higher is better", "LocalZipf", "hit-%", false, percent, ""},
	{"Pattern invalidation of 1M keys", "3-primary cluster · keys per second · higher is better", "InvalidatePattern1M", "keys/s", true, count, ""},
}

const (
	columns    = 3
	panelW     = 400
	labelW     = 132
	valueW     = 62
	barH       = 16
	rowGap     = 6
	headH      = 52
	panelPad   = 18
	asideColor = "#d1495b"
	otherColor = "#8da0cb"
	gridColor  = "#e3e3e3"
	textColor  = "#222"
	noteColor  = "#666"
)

func render(d *dataset) []byte {
	var shown []panel
	for _, p := range panels {
		if _, ok := d.values[p.row]; ok {
			shown = append(shown, p)
		}
	}
	// Each line of panels is as tall as its panel with the most libraries.
	lines := (len(shown) + columns - 1) / columns
	heights := make([]int, lines)
	for i, p := range shown {
		h := headH + len(d.libs(p.row))*(barH+rowGap) + 22 // room for the axis labels
		if p.xUnit != "" {
			h = scatterH
		}
		heights[i/columns] = max(heights[i/columns], h)
	}
	width := columns*panelW + panelPad
	height := 40
	for _, h := range heights {
		height += h + panelPad
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#fff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="26" font-size="17" font-weight="bold" fill="%s">aside against other Go caches on Redis — one run, one machine</text>`+"\n", panelPad, textColor)
	fmt.Fprintf(&b, `<text x="%d" y="26" font-size="12" fill="%s" text-anchor="end">median of the runs · log scales unless noted</text>`+"\n", width-panelPad, noteColor)
	y := 40
	for i, p := range shown {
		if i > 0 && i%columns == 0 {
			y += heights[i/columns-1] + panelPad
		}
		drawPanel(&b, d, p, panelPad+(i%columns)*panelW, y)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func drawPanel(b *bytes.Buffer, d *dataset, p panel, x, y int) {
	fmt.Fprintf(b, `<g transform="translate(%d,%d)">`+"\n", x, y)
	fmt.Fprintf(b, `<text x="0" y="18" font-size="14" font-weight="bold" fill="%s">%s</text>`+"\n", textColor, esc(p.title))
	fmt.Fprintf(b, `<text x="0" y="35" font-size="10.5" fill="%s">%s</text>`+"\n", noteColor, esc(p.note))
	if p.xUnit != "" {
		drawScatter(b, d, p)
		b.WriteString("</g>\n")
		return
	}

	libs := d.libs(p.row)
	vals := make([]float64, len(libs))
	have := make([]bool, len(libs))
	lo, hi := math.Inf(1), 0.0
	for i, l := range libs {
		vals[i], have[i] = d.median(p.row, l, p.unit)
		if have[i] && vals[i] > 0 {
			lo, hi = math.Min(lo, vals[i]), math.Max(hi, vals[i])
		}
	}
	barW := float64(panelW - labelW - valueW - panelPad)
	var scale func(float64) float64
	var ticks []float64
	if p.log && hi > 0 {
		l0 := math.Floor(math.Log10(lo))
		l1 := math.Ceil(math.Log10(hi))
		if l1 <= l0 {
			l1 = l0 + 1
		}
		// Start the axis one decade below the smallest value, so that the
		// smallest bar still shows.
		l0--
		scale = func(v float64) float64 { return (math.Log10(v) - l0) / (l1 - l0) * barW }
		for e := l0; e <= l1; e++ {
			ticks = append(ticks, math.Pow(10, e))
		}
	} else {
		top := hi
		if top == 0 {
			top = 1
		}
		scale = func(v float64) float64 { return v / top * barW }
		ticks = []float64{0, top / 2, top}
	}
	bottom := headH + len(libs)*(barH+rowGap)
	for _, t := range ticks {
		tx := float64(labelW) + scale(t)
		if p.log && t == ticks[0] {
			tx = labelW
		}
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", tx, headH-4, tx, bottom, gridColor)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" font-size="9" fill="%s" text-anchor="middle">%s</text>`+"\n", tx, bottom+12, noteColor, esc(p.format(t)))
	}
	for i, l := range libs {
		ry := headH + i*(barH+rowGap)
		weight, color := "normal", otherColor
		if isAside(l) {
			weight, color = "bold", asideColor
		}
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="11.5" font-weight="%s" fill="%s" text-anchor="end">%s</text>`+"\n", labelW-8, ry+barH-4, weight, textColor, esc(l))
		if !have[i] {
			continue
		}
		w := 0.0
		if vals[i] > 0 {
			w = math.Max(scale(vals[i]), 1)
		}
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", labelW, ry, w, barH, color)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" font-size="11" font-weight="%s" fill="%s">%s</text>`+"\n", float64(labelW)+w+4, ry+barH-4, weight, textColor, esc(p.format(vals[i])))
	}
	b.WriteString("</g>\n")
}

// drawScatter draws p's scatter: a point per library, its median of p.unit
// up (linear, from 0) and the worst run's p.xUnit across (log; a library
// with 0 there stands on the left edge).
func drawScatter(b *bytes.Buffer, d *dataset, p panel) {
	const left, top, w, h = 56, headH, panelW - 56 - 2*panelPad, scatterH - headH - 40
	type point struct {
		lib  string
		x, y float64
	}
	var pts []point
	yHi, xLo, xHi := 0.0, math.Inf(1), 0.0
	for _, l := range d.libs(p.row) {
		yv, ok1 := d.median(p.row, l, p.unit)
		xv, ok2 := d.max(p.row, l, p.xUnit)
		if !ok1 || !ok2 {
			continue
		}
		pts = append(pts, point{l, xv, yv})
		yHi = math.Max(yHi, yv)
		if xv > 0 {
			xLo, xHi = math.Min(xLo, xv), math.Max(xHi, xv)
		}
	}
	if len(pts) == 0 {
		return
	}
	if yHi == 0 {
		yHi = 1
	}
	if xHi == 0 {
		xLo, xHi = 1, 10
	}
	l0, l1 := math.Floor(math.Log10(xLo))-1, math.Ceil(math.Log10(xHi))
	if l1 <= l0 {
		l1 = l0 + 1
	}
	sx := func(v float64) float64 {
		if v <= 0 {
			return left
		}
		return left + (math.Log10(v)-l0)/(l1-l0)*w
	}
	sy := func(v float64) float64 { return top + h - v/yHi*h }
	for e := l0; e <= l1; e++ {
		tx := sx(math.Pow(10, e))
		label := sig(math.Pow(10, e))
		if e == l0 {
			label = "0"
		}
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", tx, top, tx, top+h, gridColor)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" font-size="9" fill="%s" text-anchor="middle">%s</text>`+"\n", tx, top+h+12, noteColor, esc(label))
	}
	for _, t := range []float64{0, yHi / 2, yHi} {
		ty := sy(t)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", left, ty, left+w, ty, gridColor)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" font-size="9" fill="%s" text-anchor="end">%s</text>`+"\n", left-4, ty+3, noteColor, esc(p.format(t)))
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="9.5" fill="%s" text-anchor="middle">oldest stale read, ms</text>`+"\n", left+w/2, top+h+26, noteColor)
	for i, pt := range pts {
		color, weight := otherColor, "normal"
		if isAside(pt.lib) {
			color, weight = asideColor, "bold"
		}
		cx, cy := sx(pt.x), sy(pt.y)
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="4.5" fill="%s"/>`+"\n", cx, cy, color)
		// Labels alternate above and below, so that close points stay legible.
		dy := -7.0
		if i%2 == 1 {
			dy = 14
		}
		// On the right half, the label goes left of its point: it stays in
		// the panel.
		tx, anchor := cx+6, "start"
		if cx > left+w/2 {
			tx, anchor = cx-6, "end"
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="10" font-weight="%s" fill="%s" text-anchor="%s">%s</text>`+"\n", tx, cy+dy, weight, textColor, anchor, esc(pt.lib))
	}
}

func esc(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// duration formats seconds with three significant digits.
func duration(s float64) string {
	switch {
	case s == 0:
		return "0"
	case s < 1e-6:
		return sig(s*1e9) + " ns"
	case s < 1e-3:
		return sig(s*1e6) + " µs"
	case s < 1:
		return sig(s*1e3) + " ms"
	}
	return sig(s) + " s"
}

// micros formats microseconds as a duration.
func micros(v float64) string { return duration(v * 1e-6) }

// percent formats a percentage.
func percent(v float64) string { return sig(v) + "%" }

// megabytes formats bytes in MB (10^6 bytes).
func megabytes(v float64) string { return sig(v/1e6) + " MB" }

// count formats a number with k and M.
func count(v float64) string {
	switch {
	case v >= 1e6:
		return sig(v/1e6) + "M"
	case v >= 1e4:
		return sig(v/1e3) + "k"
	}
	return sig(v)
}

func sig(v float64) string {
	switch {
	case v == math.Trunc(v) && v < 1e4:
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// ---- tables

// scenario is a row of the comparison table: one unit of one benchmark row,
// formatted by format.
type scenario struct {
	row, label, unit string
	format           func(float64) string
}

// scenarios are the rows of the comparison table.
var scenarios = []scenario{
	{"HitLocal", "1. hit, process memory (time/op)", "sec/op", duration},
	{"HitLocal", "1. hit, process memory (allocs/op)", "allocs/op", count},
	{"HitLocalParallel", "1. hit, process memory, parallel (time/op)", "sec/op", duration},
	{"HitLocalParallel", "1. hit, process memory, parallel (allocs/op)", "allocs/op", count},
	{"HitRedis", "2. hit from Redis (time/op)", "sec/op", duration},
	{"Miss", "3. miss (time/op)", "sec/op", duration},
	{"BatchCached", "4. batch of 100, cached (time/op)", "sec/op", duration},
	{"BatchMissing", "4. batch of 100, missing (time/op)", "sec/op", duration},
	{"Herd/instances=1", "5. herd, 1 instance × 8: loader calls", "loads/op", count},
	{"Herd/instances=4", "5. herd, 4 instances × 8: loader calls", "loads/op", count},
	{"Herd/instances=16", "5. herd, 16 instances × 8: loader calls", "loads/op", count},
	{"Herd/instances=16", "5. herd, 16 instances × 8: wall time", "sec/op", duration},
	{"Mix", "6. mix, cold start: throughput (ops/s)", "ops/s", count},
	{"Mix", "6. mix, cold start: hit ratio (%)", "hit-%", count},
	{"Mix", "6. mix, cold start: stale reads", "stale-reads", count},
	{"Mix", "6. mix, cold start: oldest stale read (ms)", "max-stale-ms", count},
	{"Mix", "6. mix, cold start: CPU per op, this process (µs)", "app-µs/op", sig},
	{"Mix", "6. mix, cold start: CPU per op, Redis (µs)", "redis-µs/op", sig},
	{"Mix", "6. mix, cold start: Redis commands per op", "redis-cmds/op", sig},
	{"MixWide", "6w. mix, cold start, 128 goroutines: throughput (ops/s)", "ops/s", count},
	{"MixWide", "6w. mix, cold start, 128 goroutines: stale reads", "stale-reads", count},
	{"MixWide", "6w. mix, cold start, 128 goroutines: oldest stale read (ms)", "max-stale-ms", count},
	{"MixWide", "6w. mix, cold start, 128 goroutines: CPU per op, this process (µs)", "app-µs/op", sig},
	{"MixWide", "6w. mix, cold start, 128 goroutines: CPU per op, Redis (µs)", "redis-µs/op", sig},
	{"MixWide", "6w. mix, cold start, 128 goroutines: Redis commands per op", "redis-cmds/op", sig},
	{"MixSteady", "7. mix, steady state: throughput (ops/s)", "ops/s", count},
	{"MixSteady", "7. mix, steady state: hit ratio (%)", "hit-%", count},
	{"MixSteady", "7. mix, steady state: stale reads", "stale-reads", count},
	{"MixSteady", "7. mix, steady state: oldest stale read (ms)", "max-stale-ms", count},
	{"MixSteady", "7. mix, steady state: read p50", "read-p50-µs", micros},
	{"MixSteady", "7. mix, steady state: read p99", "read-p99-µs", micros},
	{"MixSteady", "7. mix, steady state: read p99.9", "read-p99.9-µs", micros},
	{"MixSteady", "7. mix, steady state: update p50", "update-p50-µs", micros},
	{"MixSteady", "7. mix, steady state: update p99", "update-p99-µs", micros},
	{"MixSteady", "7. mix, steady state: update p99.9", "update-p99.9-µs", micros},
	{"MixSteady", "7. mix, steady state: CPU per op, this process (µs)", "app-µs/op", sig},
	{"MixSteady", "7. mix, steady state: CPU per op, Redis (µs)", "redis-µs/op", sig},
	{"MixSteady", "7. mix, steady state: Redis commands per op", "redis-cmds/op", sig},
	{"MixSteadyWide", "7w. mix, steady state, 128 goroutines: throughput (ops/s)", "ops/s", count},
	{"MixSteadyWide", "7w. mix, steady state, 128 goroutines: stale reads", "stale-reads", count},
	{"MixSteadyWide", "7w. mix, steady state, 128 goroutines: oldest stale read (ms)", "max-stale-ms", count},
	{"MixSteadyWide", "7w. mix, steady state, 128 goroutines: read p99", "read-p99-µs", micros},
	{"MixSteadyWide", "7w. mix, steady state, 128 goroutines: CPU per op, this process (µs)", "app-µs/op", sig},
	{"MixSteadyWide", "7w. mix, steady state, 128 goroutines: CPU per op, Redis (µs)", "redis-µs/op", sig},
	{"MixSteadyWide", "7w. mix, steady state, 128 goroutines: Redis commands per op", "redis-cmds/op", sig},
	{"MixProcs/procs=1", "8. mix, 1 process: throughput (ops/s)", "ops/s", count},
	{"MixProcs/procs=1", "8. mix, 1 process: loader calls", "loads", count},
	{"MixProcs/procs=1", "8. mix, 1 process: stale reads", "stale-reads", count},
	{"MixProcs/procs=4", "8. mix, 4 processes: throughput (ops/s)", "ops/s", count},
	{"MixProcs/procs=4", "8. mix, 4 processes: loader calls", "loads", count},
	{"MixProcs/procs=4", "8. mix, 4 processes: stale reads", "stale-reads", count},
	{"MixProcs/procs=4", "8. mix, 4 processes: oldest stale read (ms)", "max-stale-ms", count},
}

// compared are the tables of the scenarios that compare aside with
// something other than the libraries: a row each of what is compared.
var compared = []struct {
	title, row, column string
	units              []scenario // row is unused: the label heads a column
}{
	{
		"9. Bounded local memory (`BenchmarkLocalZipf`, package `cache`)", "LocalZipf", "policy",
		[]scenario{{"", "local hit ratio", "hit-%", percent}, {"", "time/op", "sec/op", duration}},
	},
	{
		"10. Pattern invalidation of 1M keys on 3 primaries (`BenchmarkInvalidatePattern1M`)", "InvalidatePattern1M", "how",
		[]scenario{{"", "keys/s", "keys/s", count}, {"", "peak heap", "peak-heap-B", megabytes}, {"", "time/op", "sec/op", duration}},
	},
}

func markdown(d *dataset) string {
	var b strings.Builder
	b.WriteString("#### aside against its targets\n\n")
	b.WriteString("| target | measured | met |\n|---|---|:---:|\n")
	for _, t := range targets(d) {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", t.name, t.measured, t.met)
	}
	b.WriteString("\n#### Every scenario, median of the runs\n\n")
	libs := make([]string, 0, len(libOrder))
	for _, l := range libOrder {
		for _, s := range scenarios {
			if _, ok := d.values[s.row][l]; ok {
				libs = append(libs, l)
				break
			}
		}
	}
	tableHeader(&b, "scenario", libs)
	for _, s := range scenarios {
		if _, ok := d.values[s.row]; !ok {
			continue
		}
		fmt.Fprintf(&b, "| %s |", s.label)
		for _, l := range libs {
			if v, ok := d.median(s.row, l, s.unit); ok {
				fmt.Fprintf(&b, " %s |", s.format(v))
			} else {
				b.WriteString(" – |")
			}
		}
		b.WriteString("\n")
	}
	for _, c := range compared {
		if _, ok := d.values[c.row]; !ok {
			continue
		}
		fmt.Fprintf(&b, "\n#### %s, median of the runs\n\n| %s |", c.title, c.column)
		for _, u := range c.units {
			fmt.Fprintf(&b, " %s |", u.label)
		}
		b.WriteString("\n|---|")
		for range c.units {
			b.WriteString("---:|")
		}
		b.WriteString("\n")
		for _, l := range d.libs(c.row) {
			fmt.Fprintf(&b, "| %s |", l)
			for _, u := range c.units {
				if v, ok := d.median(c.row, l, u.unit); ok {
					fmt.Fprintf(&b, " %s |", u.format(v))
				} else {
					b.WriteString(" – |")
				}
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// target is one of aside's targets and where this run stands against it.
type target struct {
	name, measured string
	met            string // metYes, metNo, metReport or metAbsent
}

const (
	metYes    = "yes"
	metNo     = "**no**"
	metReport = "report"
	metAbsent = "–"
)

func mark(ok bool) string {
	if ok {
		return metYes
	}
	return metNo
}

// targets compares aside with the targets of the benchmark issues, each from
// this one run: medians for times and throughputs, the worst run for counts
// that must be exact (allocations, loader calls of a herd, stale reads).
func targets(d *dataset) []target {
	var ts []target
	add := func(name, measured, met string) { ts = append(ts, target{name, measured, met}) }
	absent := func(name string) { add(name, "not in this run", metAbsent) }

	// timeRatio: aside's median time in row against base's, marked by met
	// from their ratio.
	timeRatio := func(name, row, base string, met func(ratio float64) string) {
		a, ok1 := d.median(row, "aside", "sec/op")
		r, ok2 := d.median(row, base, "sec/op")
		if !ok1 || !ok2 || r == 0 {
			absent(name)
			return
		}
		add(name, fmt.Sprintf("%.2f× (%s vs %s)", a/r, duration(a), duration(r)), met(a/r))
	}
	// at most: aside's median time in row is at most limit × base's.
	atMost := func(name, row, base string, limit float64) {
		timeRatio(name, row, base, func(ratio float64) string { return mark(ratio <= limit) })
	}
	// ratio: aside's median time in row against base's, reported.
	ratio := func(name, row, base string) {
		timeRatio(name, row, base, func(float64) string { return metReport })
	}
	// faster: base's median time is at least factor × aside's.
	faster := func(name, row, base string, factor float64) {
		a, ok1 := d.median(row, "aside", "sec/op")
		p, ok2 := d.median(row, base, "sec/op")
		if !ok1 || !ok2 || a == 0 {
			absent(name)
			return
		}
		add(name, fmt.Sprintf("%.1f× (%s vs %s)", p/a, duration(a), duration(p)), mark(p/a >= factor))
	}
	// bestPeer: the peer with the highest median ops/s in row, of those
	// that read nothing stale in any run when fresh is set.
	bestPeer := func(row string, fresh bool) (best float64, bestLib string) {
		for _, l := range d.libs(row) {
			if isAside(l) {
				continue
			}
			if stale, ok := d.max(row, l, "stale-reads"); fresh && (!ok || stale != 0) {
				continue
			}
			if v, ok := d.median(row, l, "ops/s"); ok && v > best {
				best, bestLib = v, l
			}
		}
		return best, bestLib
	}
	// noStale: aside read nothing stale in any run of row.
	noStale := func(name, row string) {
		s, ok := d.max(row, "aside", "stale-reads")
		if !ok {
			absent(name)
			return
		}
		age, _ := d.max(row, "aside", "max-stale-ms")
		add(name, fmt.Sprintf("%s in the worst run (oldest %s ms)", count(s), count(age)), mark(s == 0))
	}
	// freshAtLeast: aside's median ops/s in row is at least factor × that
	// of the best peer that read nothing stale in any run.
	freshAtLeast := func(name, row string, factor float64) {
		a, ok := d.median(row, "aside", "ops/s")
		best, bestLib := bestPeer(row, true)
		switch {
		case !ok:
			absent(name)
		case best == 0:
			add(name, count(a)+" ops/s (every peer read something stale)", metReport)
		default:
			add(name, fmt.Sprintf("%.2f× %s (%s vs %s ops/s)", a/best, bestLib, count(a), count(best)), mark(a >= factor*best))
		}
	}

	for _, row := range []string{"HitLocal", "HitLocalParallel"} {
		for _, peer := range []string{"rueidisaside", "go-redis-cache+LFU"} {
			faster(fmt.Sprintf("%s: aside ≥ 10× faster than %s", row, peer), row, peer, 10)
		}
		name := row + ": aside 0 allocs/op"
		if al, ok := d.max(row, "aside", "allocs/op"); ok {
			add(name, count(al)+" (worst run)", mark(al == 0))
		} else {
			absent(name)
		}
	}
	name := "HitLocalParallel: aside no slower per op than in HitLocal"
	if p, ok1 := d.median("HitLocalParallel", "aside", "sec/op"); ok1 {
		if s, ok2 := d.median("HitLocal", "aside", "sec/op"); ok2 && s > 0 {
			add(name, fmt.Sprintf("%.2f× (%s parallel vs %s serial)", p/s, duration(p), duration(s)), mark(p <= s))
		} else {
			absent(name)
		}
	} else {
		absent(name)
	}
	atMost("HitRedis: aside ≤ 1.15× hand-written rueidis Do(GET) + decode", "HitRedis", "rueidis", 1.15)
	atMost("Miss: aside ≤ 1.3× hand-written GET + SET", "Miss", "rueidis", 1.3)
	// Without compare-and-set aside's writes under a lease are scripts,
	// which the tracking batch (DoMultiCache) is the fairer base for; with
	// it, plain GETs and SETs.
	if compareAndSetServer(d) {
		atMost("BatchMissing: aside ≤ 1.3× hand-written DoMulti GETs + DoMulti SETs (a server with compare-and-set)", "BatchMissing", "rueidis", 1.3)
		ratio("BatchMissing: aside vs hand-written DoMultiCache GETs + DoMulti SETs", "BatchMissing", "rueidis-DoCache")
	} else {
		atMost("BatchMissing: aside ≤ 1.2× hand-written DoMultiCache GETs + DoMulti SETs (a server without compare-and-set)", "BatchMissing", "rueidis-DoCache", 1.2)
		ratio("BatchMissing: aside vs hand-written DoMulti GETs + DoMulti SETs", "BatchMissing", "rueidis")
	}
	name = "BatchCached: aside reads 100 cached keys in ≤ 8 µs"
	if a, ok := d.median("BatchCached", "aside", "sec/op"); ok {
		add(name, duration(a), mark(a <= 8e-6))
	} else {
		absent(name)
	}
	for _, n := range []string{"1", "4", "16"} {
		name := fmt.Sprintf("Herd/instances=%s: exactly 1 loader call", n)
		if m, ok := d.max("Herd/instances="+n, "aside", "max-loads"); ok {
			add(name, fmt.Sprintf("at most %s per herd", count(m)), mark(m == 1))
		} else {
			absent(name)
		}
	}
	// cpuAtMost: aside's median CPU per op (this process and Redis) is at
	// most that of every peer that read nothing stale in any run.
	cpuAtMost := func(name, row string) {
		a, ok := d.median(row, "aside", cpuUnit)
		if !ok {
			absent(name)
			return
		}
		met, worst := true, ""
		var peers []string
		for _, l := range d.libs(row) {
			if isAside(l) {
				continue
			}
			if stale, ok := d.max(row, l, "stale-reads"); !ok || stale != 0 {
				continue
			}
			if v, ok := d.median(row, l, cpuUnit); ok {
				peers = append(peers, fmt.Sprintf("%s %s", l, sig(v)))
				if v < a {
					met, worst = false, l
				}
			}
		}
		m := fmt.Sprintf("aside %s µs", sig(a))
		if len(peers) > 0 {
			m += " · " + strings.Join(peers, " · ")
		} else {
			m += " (no peer with 0 stale reads)"
		}
		if !met {
			m += " (above " + worst + ")"
		}
		add(name, m, mark(met))
	}
	for _, mix := range []struct{ row, name string }{
		{"Mix", "Mix (cold start)"}, {"MixWide", "MixWide (cold start, 128 goroutines)"},
		{"MixSteady", "MixSteady"}, {"MixSteadyWide", "MixSteadyWide (128 goroutines)"},
	} {
		noStale(mix.name+": 0 stale reads", mix.row)
		freshAtLeast(mix.name+": aside's throughput ≥ 1.5× the best peer with 0 stale reads", mix.row, 1.5)
		cpuAtMost(mix.name+": aside's CPU per op (this process + Redis) ≤ every peer's with 0 stale reads", mix.row)
	}
	// Not MixProcs/procs=1: there every change is the process's own, which
	// StaleWhileReloading never hides, so asideSWR is aside there.
	for _, row := range []string{"Mix", "MixWide", "MixSteady", "MixSteadyWide", "MixProcs/procs=4"} {
		swrAgainstStalePeers(d, row, add, absent)
	}
	for _, n := range []string{"1", "4"} {
		row := "MixProcs/procs=" + n
		noStale(fmt.Sprintf("MixProcs/procs=%s: 0 stale reads", n), row)
		name := fmt.Sprintf("MixProcs/procs=%s: loader calls and throughput", n)
		loads, ok1 := d.median(row, "aside", "loads")
		ops, ok2 := d.median(row, "aside", "ops/s")
		if !ok1 || !ok2 {
			absent(name)
			continue
		}
		m := fmt.Sprintf("aside %s loads, %s ops/s", count(loads), count(ops))
		var peers []string
		for _, l := range d.libs(row) {
			pl, ok1 := d.median(row, l, "loads")
			po, ok2 := d.median(row, l, "ops/s")
			if l != "aside" && ok1 && ok2 {
				peers = append(peers, fmt.Sprintf("%s %s, %s", l, count(pl), count(po)))
			}
		}
		if len(peers) > 0 {
			m += " · " + strings.Join(peers, " · ")
		}
		add(name, m, metReport)
	}

	name = "LocalZipf: local hit ratio of aside vs otter alone (the ceiling) vs the old drop"
	if _, ok := d.values["LocalZipf"]; ok {
		var hits, times []string
		for _, p := range d.libs("LocalZipf") {
			label := p
			if p == "otter" {
				label += " (ceiling)"
			}
			if v, ok := d.median("LocalZipf", p, "hit-%"); ok {
				hits = append(hits, label+" "+percent(v))
			}
			if v, ok := d.median("LocalZipf", p, "sec/op"); ok {
				times = append(times, p+" "+duration(v))
			}
		}
		m := "hit ratio: " + strings.Join(hits, " · ")
		if len(times) > 0 {
			m += "; time/op: " + strings.Join(times, " · ")
		}
		add(name, m, metReport)
	} else {
		absent(name)
	}
	name = "InvalidatePattern1M: throughput of aside vs hand-pipelined UNLINK, aside's peak heap"
	a, ok1 := d.median("InvalidatePattern1M", "aside", "keys/s")
	h, ok2 := d.median("InvalidatePattern1M", "unlink-by-hand", "keys/s")
	switch {
	case ok1 && ok2 && h > 0:
		m := fmt.Sprintf("%s vs %s keys/s (%.2f×)", count(a), count(h), a/h)
		if heap, ok := d.max("InvalidatePattern1M", "aside", "peak-heap-B"); ok {
			m += "; aside's peak heap " + megabytes(heap) + " (worst run)"
		}
		add(name, m, metReport)
	case ok1:
		add(name, count(a)+" keys/s (no unlink-by-hand in this run)", metReport)
	default:
		absent(name)
	}
	return ts
}

// compareAndSetServer reports whether the run's server has compare-and-set
// (SET ... IFEQ): Valkey 8.1 or newer, Redis 8.4 or newer.
func compareAndSetServer(d *dataset) bool {
	conf := make(map[string]string)
	for _, c := range d.config {
		conf[c.key] = c.value
	}
	at := func(v string, major, minor int) bool {
		var ma, mi int
		if _, err := fmt.Sscanf(v, "%d.%d", &ma, &mi); err != nil {
			return false
		}
		return ma > major || ma == major && mi >= minor
	}
	if v, ok := conf["valkey"]; ok {
		return at(v, 8, 1)
	}
	return at(conf["redis"], 8, 4)
}

// swrAgainstStalePeers adds asideSWR's target in row: a median throughput of
// at least 0.8× that of the best (by median ops/s) of the peers that serve
// stale copies by design, with its oldest stale read (the worst run's) at most
// 1/50 of that peer's (the median run's).
func swrAgainstStalePeers(d *dataset, row string, add func(name, measured, met string), absent func(name string)) {
	name := fmt.Sprintf("%s: %s's throughput ≥ 0.8× the best stale-by-design peer's, oldest stale read ≤ 1/50 of its", row, asideSWR)
	ops, ok1 := d.median(row, asideSWR, "ops/s")
	age, ok2 := d.max(row, asideSWR, "max-stale-ms")
	stale, _ := d.max(row, asideSWR, "stale-reads")
	var best, bestAge float64
	var bestLib string
	for _, l := range staleByDesign {
		if v, ok := d.median(row, l, "ops/s"); ok && v > best {
			best, bestLib = v, l
			bestAge, _ = d.median(row, l, "max-stale-ms")
		}
	}
	if !ok1 || !ok2 || best == 0 {
		absent(name)
		return
	}
	ageRatio := "–"
	if bestAge > 0 {
		ageRatio = fmt.Sprintf("1/%.0f", bestAge/math.Max(age, 1e-9))
		if age == 0 {
			ageRatio = "0"
		}
	}
	add(name, fmt.Sprintf("%.2f× %s (%s vs %s ops/s); oldest stale read %s vs %s ms (%s), %s stale reads in the worst run",
		ops/best, bestLib, count(ops), count(best), count(age), count(bestAge), ageRatio, count(stale)),
		mark(ops >= 0.8*best && age*50 <= bestAge))
}

// ---- the repository's README

const (
	topBegin = "<!-- performance:begin (written by `make bench` in benchmarks/) -->"
	topEnd   = "<!-- performance:end -->"
)

// topColumns are the columns of the repository README's summary: each a
// library, or a family whose rows pick the variant they compare.
var topColumns = []string{"aside", "rueidis by hand", "rueidisaside", "go-redis/cache", "sturdyc"}

// variantMode says which variant of a library family a row of that summary
// shows: rueidis with Do or DoCache, go-redis/cache on Redis alone or with its
// TinyLFU.
type variantMode int

const (
	plainFirst   variantMode = iota // the plain one, else the one with copies
	localFirst                      // the one with copies in process memory, else the plain one
	bothVariants                    // the plain one, then the other in parentheses
)

// topRow is a row of that summary.
type topRow struct {
	label, row, unit string
	format           func(float64) string
	mode             variantMode
}

// libNote is a library and how a cell names it ("" for a column's own).
type libNote struct{ lib, note string }

// columnLibs returns the libraries of column c: the plain one, and the one
// keeping copies in process memory where the column has two.
func columnLibs(c string) (plain, local libNote) {
	switch c {
	case "rueidis by hand":
		return libNote{"rueidis", ""}, libNote{"rueidis-DoCache", "DoCache"}
	case "go-redis/cache":
		return libNote{"go-redis-cache", ""}, libNote{"go-redis-cache+LFU", "TinyLFU"}
	}
	return libNote{c, ""}, libNote{}
}

var topRows = []topRow{
	{"hit in process memory", "HitLocal", "sec/op", duration, localFirst},
	{"hit in process memory, GOMAXPROCS goroutines", "HitLocalParallel", "sec/op", duration, localFirst},
	{"hit from Redis", "HitRedis", "sec/op", duration, plainFirst},
	{"miss (loader returns at once)", "Miss", "sec/op", duration, plainFirst},
	{"100 keys, all cached", "BatchCached", "sec/op", duration, localFirst},
	{"100 keys, all missing", "BatchMissing", "sec/op", duration, plainFirst},
	{"loader calls, 16 instances × 8 goroutines on one cold key", "Herd/instances=16", "loads/op", count, plainFirst},
	{"95/5 read/update mix from cold: ops/s", "Mix", "ops/s", count, bothVariants},
	{"95/5 read/update mix from cold: stale reads", "Mix", "stale-reads", count, bothVariants},
	{"the mix at steady state: ops/s", "MixSteady", "ops/s", count, bothVariants},
	{"the mix at steady state: read p99", "MixSteady", "read-p99-µs", micros, bothVariants},
	{"the mix at steady state: stale reads", "MixSteady", "stale-reads", count, bothVariants},
	{"the mix at steady state, 128 goroutines: ops/s", "MixSteadyWide", "ops/s", count, bothVariants},
	{"the mix at steady state: CPU µs per op, this process + Redis", "MixSteady", cpuUnit, sig, bothVariants},
	{"the mix in 4 processes: loader calls", "MixProcs/procs=4", "loads", count, bothVariants},
	{"the mix in 4 processes: stale reads", "MixProcs/procs=4", "stale-reads", count, bothVariants},
}

// performance is the performance section of the repository's README: the
// run, a summary table, and the targets that run missed.
func performance(d *dataset) string {
	conf := make(map[string]string)
	for _, c := range d.config {
		conf[c.key] = c.value
	}
	var b strings.Builder
	b.WriteString(topBegin + "\n\n")
	var run []string
	for _, k := range []string{"aside", "cores", "cpu", "go", "redis", "valkey"} {
		if v, ok := conf[k]; ok {
			switch k {
			case "aside":
				v = "aside at `" + v + "`"
			case "cores":
				v += " cores"
			case "redis":
				if _, valkey := conf["valkey"]; valkey {
					continue // the version of Redis Valkey is compatible with
				}
				v = "Redis " + v
			case "valkey":
				v = "Valkey " + v
			}
			run = append(run, v)
		}
	}
	fmt.Fprintf(&b, "From one run of `make bench` (%s).\n", strings.Join(run, ", "))
	b.WriteString("`benchmarks/README.md` has every scenario, the chart, aside's targets and how to\n")
	b.WriteString("reproduce it. Medians of the runs; absolute numbers move with the machine, so\n")
	b.WriteString("compare the columns, not the runs.")
	if r, ok := d.median("HitRedis", "rueidis", "sec/op"); ok {
		fmt.Fprintf(&b, " A hand-written GET and decode, one loopback\nround trip, took %s in that run.", duration(r))
	}
	b.WriteString("\n\n")
	tableHeader(&b, "", topColumns)
	for _, r := range topRows {
		if _, ok := d.values[r.row]; !ok {
			continue
		}
		fmt.Fprintf(&b, "| %s |", r.label)
		for _, c := range topColumns {
			b.WriteString(" " + topCell(d, r, c) + " |")
		}
		b.WriteString("\n")
	}
	var missed, absent []string
	for _, t := range targets(d) {
		switch t.met {
		case metNo:
			missed = append(missed, t.name+": "+t.measured)
		case metAbsent:
			absent = append(absent, strings.SplitN(t.name, ":", 2)[0])
		}
	}
	b.WriteString("\n")
	if len(missed) == 0 {
		b.WriteString("Every target that run measured was met.\n")
	} else {
		b.WriteString("Targets that run missed:\n\n")
		for _, m := range missed {
			fmt.Fprintf(&b, "- %s\n", m)
		}
	}
	if len(absent) > 0 {
		fmt.Fprintf(&b, "\nNot in that run: %s.\n", strings.Join(slices.Compact(absent), ", "))
	}
	b.WriteString("\n" + topEnd)
	return b.String()
}

// topCell is the cell of column c in row r.
func topCell(d *dataset, r topRow, c string) string {
	plain, local := columnLibs(c)
	val := func(ln libNote) (string, bool) {
		if ln.lib == "" {
			return "", false
		}
		v, ok := d.median(r.row, ln.lib, r.unit)
		if !ok {
			return "", false
		}
		s := r.format(v)
		if ln.lib == "aside" && (r.row == "HitLocal" || r.row == "HitLocalParallel") {
			if al, ok := d.max(r.row, "aside", "allocs/op"); ok {
				s += ", " + count(al) + " allocs"
			}
		}
		return s, true
	}
	p, pok := val(plain)
	l, lok := val(local)
	switch {
	case r.mode == bothVariants && pok && lok:
		return p + " (" + l + " with " + local.note + ")"
	case r.mode == localFirst && lok:
		return l + " (" + local.note + ")"
	case pok:
		return p
	case lok:
		return l + " (" + local.note + ")"
	}
	return "–"
}

// ---- README

const (
	beginMarker = "<!-- results:begin (written by `make bench`) -->"
	endMarker   = "<!-- results:end -->"
)

func section(d *dataset, summary, table, chartRef string) string {
	var b strings.Builder
	b.WriteString(beginMarker + "\n\n")
	b.WriteString("#### Machine and versions\n\n")
	for _, c := range d.config {
		if c.key == "pkg" {
			continue
		}
		fmt.Fprintf(&b, "- %s: `%s`\n", c.key, c.value)
	}
	fmt.Fprintf(&b, "\n![aside against the other libraries](%s)\n\n", chartRef)
	b.WriteString(summary)
	if table != "" {
		b.WriteString("\n#### benchstat\n\n<details><summary>every benchmark, every unit (`results/benchstat.txt`)</summary>\n\n```text\n")
		b.WriteString(strings.TrimRight(table, "\n"))
		b.WriteString("\n```\n\n</details>\n")
	}
	b.WriteString("\n" + endMarker)
	return b.String()
}

// splice replaces the section of the README at path from begin to end (the
// markers included) with s.
func splice(path, begin, end, s string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	text := string(old)
	i := strings.Index(text, begin)
	j := strings.Index(text, end)
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %q … %q section to rewrite", path, begin, end)
	}
	text = text[:i] + s + text[j+len(end):]
	return writeFile(path, text)
}

func writeFile(path, s string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(f, s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// tableHeader writes the header of a Markdown table: a first column named
// first, then cols, right-aligned.
func tableHeader(b *strings.Builder, first string, cols []string) {
	fmt.Fprintf(b, "| %s |", first)
	for _, c := range cols {
		fmt.Fprintf(b, " %s |", c)
	}
	b.WriteString("\n|---|")
	for range cols {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
}
