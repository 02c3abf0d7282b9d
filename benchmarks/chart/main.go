// Command chart turns the output of the comparison benchmarks (results/bench.txt,
// as `make bench` writes it) into what benchmarks/README.md shows: an SVG chart of
// the key comparisons, a table of the median of every scenario for every
// library, and aside's standing against its targets. With -readme it rewrites
// the part of the README between the results markers with all of it, the
// machine and the versions, and the benchstat table.
//
//	go run ./chart -in results/bench.txt -svg results/chart.svg \
//		-benchstat results/benchstat.txt -readme README.md
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
	if err := splice(*readme, section(data, summary, string(table), *chartRef)); err != nil {
		log.Fatal(err)
	}
}

// libOrder is the order of the libraries in the chart and the tables; aside
// first, then from the rawest to the most featured.
var libOrder = []string{"aside", "rueidis", "rueidis-DoCache", "rueidisaside", "go-redis-cache", "go-redis-cache+LFU", "sturdyc"}

// dataset holds every measurement by row (the benchmark name without its
// lib= part and GOMAXPROCS), library and unit, and the file configuration.
type dataset struct {
	values map[string]map[string]map[string][]float64
	rows   []string // in order of first appearance
	config []kv     // file configuration, first value of each key
}

type kv struct{ key, value string }

func read(path string) (*dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := &dataset{values: make(map[string]map[string]map[string][]float64)}
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
		}
		for _, v := range res.Values {
			d.values[row][lib][v.Unit] = append(d.values[row][lib][v.Unit], v.Value)
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

// split takes "HitLocal/lib=aside-2" apart into "HitLocal" and "aside".
func split(name benchfmt.Name) (row, lib string) {
	base, parts := name.Parts()
	row = string(base)
	for _, p := range parts {
		s := string(p)
		switch {
		case strings.HasPrefix(s, "/lib="):
			lib = s[len("/lib="):]
		case strings.HasPrefix(s, "-"): // GOMAXPROCS
		default:
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

// libs returns the libraries measured in row, in libOrder.
func (d *dataset) libs(row string) []string {
	var out []string
	for _, l := range libOrder {
		if _, ok := d.values[row][l]; ok {
			out = append(out, l)
		}
	}
	for l := range d.values[row] {
		if !slices.Contains(libOrder, l) {
			out = append(out, l)
		}
	}
	return out
}

// ---- chart

// panel is one bar chart of the figure: one value of one row for every
// library that ran it.
type panel struct {
	title, note string
	row, unit   string
	log         bool
	format      func(float64) string
}

var panels = []panel{
	{"Hit from process memory", "one goroutine · time per Get · lower is better", "HitLocal", "sec/op", true, duration},
	{"Hit from process memory, parallel", "GOMAXPROCS goroutines · lower is better", "HitLocalParallel", "sec/op", true, duration},
	{"Hit from Redis", "no copy in process memory · lower is better", "HitRedis", "sec/op", true, duration},
	{"Miss", "absent key, loader returns at once · lower is better", "Miss", "sec/op", true, duration},
	{"Batch of 100 keys, all cached", "time per batch · lower is better", "BatchCached", "sec/op", true, duration},
	{"Batch of 100 keys, all missing", "time per batch · lower is better", "BatchMissing", "sec/op", true, duration},
	{"Herd: loader calls", "16 instances × 8 goroutines, one cold key · target 1", "Herd/instances=16", "loads/op", true, count},
	{"Mix: stale reads", "Zipf reads, 5% updates, 4 instances · target 0", "Mix", "stale-reads", true, count},
	{"Mix: throughput", "same run · operations per second · higher is better", "Mix", "ops/s", true, count},
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
	fmt.Fprintf(&b, `<text x="%d" y="26" font-size="12" fill="%s" text-anchor="end">median of the runs · log scales</text>`+"\n", width-panelPad, noteColor)
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
		if l == "aside" {
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

// scenarios are the rows of the comparison table, with the unit shown.
var scenarios = []struct{ row, label, unit string }{
	{"HitLocal", "1. hit, process memory (time/op)", "sec/op"},
	{"HitLocal", "1. hit, process memory (allocs/op)", "allocs/op"},
	{"HitLocalParallel", "1. hit, process memory, parallel (time/op)", "sec/op"},
	{"HitLocalParallel", "1. hit, process memory, parallel (allocs/op)", "allocs/op"},
	{"HitRedis", "2. hit from Redis (time/op)", "sec/op"},
	{"Miss", "3. miss (time/op)", "sec/op"},
	{"BatchCached", "4. batch of 100, cached (time/op)", "sec/op"},
	{"BatchMissing", "4. batch of 100, missing (time/op)", "sec/op"},
	{"Herd/instances=1", "5. herd, 1 instance × 8: loader calls", "loads/op"},
	{"Herd/instances=4", "5. herd, 4 instances × 8: loader calls", "loads/op"},
	{"Herd/instances=16", "5. herd, 16 instances × 8: loader calls", "loads/op"},
	{"Herd/instances=16", "5. herd, 16 instances × 8: wall time", "sec/op"},
	{"Mix", "6. mix: throughput (ops/s)", "ops/s"},
	{"Mix", "6. mix: hit ratio (%)", "hit-%"},
	{"Mix", "6. mix: stale reads", "stale-reads"},
	{"Mix", "6. mix: oldest stale read (ms)", "max-stale-ms"},
}

func markdown(d *dataset) string {
	var b strings.Builder
	b.WriteString("#### aside against its targets\n\n")
	b.WriteString(targets(d))
	b.WriteString("\n#### Every scenario, median of the runs\n\n")
	libs := make([]string, 0, len(libOrder))
	for _, l := range libOrder {
		for _, row := range d.rows {
			if _, ok := d.values[row][l]; ok {
				libs = append(libs, l)
				break
			}
		}
	}
	b.WriteString("| scenario |")
	for _, l := range libs {
		fmt.Fprintf(&b, " %s |", l)
	}
	b.WriteString("\n|---|")
	for range libs {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, s := range scenarios {
		if _, ok := d.values[s.row]; !ok {
			continue
		}
		fmt.Fprintf(&b, "| %s |", s.label)
		for _, l := range libs {
			v, ok := d.median(s.row, l, s.unit)
			switch {
			case !ok:
				b.WriteString(" – |")
			case s.unit == "sec/op":
				fmt.Fprintf(&b, " %s |", duration(v))
			default:
				fmt.Fprintf(&b, " %s |", count(v))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// targets compares aside with the targets of the benchmark issue.
func targets(d *dataset) string {
	var b strings.Builder
	b.WriteString("| target | measured | met |\n|---|---|:---:|\n")
	mark := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	for _, row := range []string{"HitLocal", "HitLocalParallel"} {
		a, ok := d.median(row, "aside", "sec/op")
		if !ok {
			continue
		}
		for _, peer := range []string{"rueidisaside", "go-redis-cache+LFU"} {
			p, ok := d.median(row, peer, "sec/op")
			if !ok {
				continue
			}
			fmt.Fprintf(&b, "| %s: aside ≥ 10× faster than %s | %.1f× (%s vs %s) | %s |\n",
				row, peer, p/a, duration(a), duration(p), mark(p/a >= 10))
		}
		if al, ok := d.max(row, "aside", "allocs/op"); ok {
			fmt.Fprintf(&b, "| %s: aside 0 allocs/op | %s (worst run) | %s |\n", row, count(al), mark(al == 0))
		}
	}
	if a, ok := d.median("Miss", "aside", "sec/op"); ok {
		if r, ok := d.median("Miss", "rueidis", "sec/op"); ok {
			fmt.Fprintf(&b, "| Miss: aside within 1.3× of rueidis GET + SET | %.2f× (%s vs %s) | %s |\n",
				a/r, duration(a), duration(r), mark(a/r <= 1.3))
		}
	}
	for _, n := range []string{"1", "4", "16"} {
		row := "Herd/instances=" + n
		if m, ok := d.max(row, "aside", "max-loads"); ok {
			fmt.Fprintf(&b, "| Herd, %s instance(s): exactly 1 loader call | at most %s per herd | %s |\n", n, count(m), mark(m == 1))
		}
	}
	if s, ok := d.max("Mix", "aside", "stale-reads"); ok {
		age, _ := d.max("Mix", "aside", "max-stale-ms")
		fmt.Fprintf(&b, "| Mix: 0 stale reads | %s in the worst run (oldest %s ms) | %s |\n", count(s), count(age), mark(s == 0))
	}
	return b.String()
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

// splice replaces the results section of the README with s.
func splice(path, s string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	text := string(old)
	i := strings.Index(text, beginMarker)
	j := strings.Index(text, endMarker)
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %q … %q section to rewrite", path, beginMarker, endMarker)
	}
	text = text[:i] + s + text[j+len(endMarker):]
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
