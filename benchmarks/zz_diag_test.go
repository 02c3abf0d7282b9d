package benchmarks

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func cmdstats(t *testing.T) map[string]string {
	out, err := srv.Do(context.Background(), "INFO", "commandstats")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if k, v, ok := strings.Cut(l, ":"); ok && strings.HasPrefix(k, "cmdstat_") {
			calls, _, _ := strings.Cut(v, ",")
			m[k] = calls
		}
	}
	return m
}

func TestDiagRedisHit(t *testing.T) {
	for _, c := range []contender{asideRedis, rueidisDo, rueidisAsideRedis} {
		flush(t)
		srv.Do(context.Background(), "CONFIG", "RESETSTAT")
		e, _ := loaders()
		cl := c.open(t, e)
		ctx := context.Background()
		cl.Get(ctx, 1)
		srv.Do(context.Background(), "CONFIG", "RESETSTAT")
		start := time.Now()
		for range 1000 {
			cl.Get(ctx, 1)
		}
		fmt.Println(c.name, time.Since(start)/1000, cmdstats(t))
	}
}

func TestDiagMiss(t *testing.T) {
	for _, c := range []contender{asideLocal, rueidisDo, rueidisAside} {
		flush(t)
		e, _ := loaders()
		cl := c.open(t, e)
		ctx := context.Background()
		cl.Get(ctx, -5)
		srv.Do(context.Background(), "CONFIG", "RESETSTAT")
		start := time.Now()
		for i := range 1000 {
			cl.Get(ctx, int64(i))
		}
		fmt.Println(c.name, time.Since(start)/1000, cmdstats(t))
	}
}

func TestDiagBatchMissing(t *testing.T) {
	for _, c := range []contender{asideLocal, rueidisDo} {
		flush(t)
		e, _ := loaders()
		cl := c.open(t, e)
		ctx := context.Background()
		srv.Do(context.Background(), "CONFIG", "RESETSTAT")
		ids := make([]int64, 100)
		start := time.Now()
		for r := range 20 {
			for i := range ids {
				ids[i] = int64(r*100 + i)
			}
			cl.GetMany(ctx, ids)
		}
		fmt.Println(c.name, time.Since(start)/20, cmdstats(t))
	}
}

func TestDiagHerd(t *testing.T) {
	for _, c := range []contender{asideLocal, rueidisAside} {
		flush(t)
		srv.Do(context.Background(), "CONFIG", "RESETSTAT")
		res := testing.Benchmark(func(b *testing.B) { benchHerd(b, c, 16) })
		fmt.Println(c.name, res.String(), res.MemString(), cmdstats(t))
	}
}

func TestDiagRedisHitStats(t *testing.T) {
	flush(t)
	e, _ := loaders()
	cl := asideRedis.open(t, e).(asideClient)
	ctx := context.Background()
	cl.Get(ctx, 1)
	fmt.Printf("%+v\n", cl.c.Stats())
	v, _ := srv.Do(ctx, "GET", Key(e.ns, 1))
	p, _ := srv.Do(ctx, "PTTL", Key(e.ns, 1))
	fmt.Printf("%q %s\n", v, p)
	for range 10 {
		cl.Get(ctx, 1)
	}
	fmt.Printf("%+v\n", cl.c.Stats())
	v, _ = srv.Do(ctx, "GET", Key(e.ns, 1))
	fmt.Printf("%q\n", v)
}

func TestDiagRedisHitCmds(t *testing.T) {
	flush(t)
	e, _ := loaders()
	cl := asideRedis.open(t, e).(asideClient)
	ctx := context.Background()
	cl.Get(ctx, 1)
	cl.Get(ctx, 1)
	srv.Do(context.Background(), "CONFIG", "RESETSTAT")
	for range 10 {
		cl.Get(ctx, 1)
	}
	fmt.Println(cmdstats(t))
	out, _ := srv.Do(ctx, "INFO", "commandstats")
	fmt.Println(out)
}

func TestDiagMonitor(t *testing.T) {
	flush(t)
	e, _ := loaders()
	cl := asideRedis.open(t, e).(asideClient)
	ctx := context.Background()
	cl.Get(ctx, 1)
	cl.Get(ctx, 1)
	fmt.Println("PORT", srv.Port())
	time.Sleep(3 * time.Second) // diagnostic only: time to attach redis-cli MONITOR by hand
	for range 3 {
		cl.Get(ctx, 1)
	}
	time.Sleep(time.Second)
}
