package benchmarks

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// probe is what the benchmark process and Redis had spent at one moment: the
// process's CPU time (user and system, getrusage), Redis' CPU time (INFO
// cpu, its main thread and the rest) and the commands Redis had run (INFO
// commandstats, commands run by scripts and transactions included). Two
// probes around a timed run give what its operations cost, whoever spent it:
// the contender's code, the benchmark's own (alike for every contender), and
// Redis.
type probe struct {
	app, redis time.Duration
	commands   int64
	ok         bool
}

// probeCommands is how many commands of the probes themselves the count
// between two probes holds: the first probe's INFO commandstats and INFO
// cpu (Redis counts a command once it has answered it, so a probe's INFO
// commandstats does not count itself).
const probeCommands = 2

func takeProbe(tb testing.TB) probe {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var p probe
	stats, err := srv.Do(ctx, "INFO", "commandstats")
	if err != nil {
		tb.Logf("probe: %v", err)
		return p
	}
	cpu, err := srv.Do(ctx, "INFO", "cpu")
	if err != nil {
		tb.Logf("probe: %v", err)
		return p
	}
	app, ok := processCPU()
	if !ok {
		return p
	}
	p.app, p.ok = app, true
	for line := range strings.Lines(cpu) {
		name, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if name == "used_cpu_user" || name == "used_cpu_sys" {
			f, _ := strconv.ParseFloat(v, 64)
			p.redis += time.Duration(f * float64(time.Second))
		}
	}
	for line := range strings.Lines(stats) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for f := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				p.commands += n
			}
		}
	}
	return p
}

// report reports, per operation of the ops run between p and end: the CPU
// time of this process (app-µs/op) and of Redis (redis-µs/op), and the
// commands Redis ran (redis-cmds/op).
func (p probe) report(b *testing.B, end probe, ops int) {
	if !p.ok || !end.ok || ops <= 0 {
		return
	}
	n := float64(ops)
	b.ReportMetric(float64(end.app-p.app)/float64(time.Microsecond)/n, "app-µs/op")
	b.ReportMetric(float64(end.redis-p.redis)/float64(time.Microsecond)/n, "redis-µs/op")
	b.ReportMetric(float64(end.commands-p.commands-probeCommands)/n, "redis-cmds/op")
}
