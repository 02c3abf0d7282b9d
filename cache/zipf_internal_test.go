package cache

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"

	"github.com/maypok86/otter/v2"
)

// The bounded-memory scenario: reads of 1M records whose ids follow a Zipf
// law (s = 1.1), with room in process memory for 10% of the records by size.
// A read that finds no copy stores one, as a Get does after its round trip.
// Reported: hit-%, the reads served from the copies after a warm-up of
// zipfWarm reads. Three policies at the same budget:
//
//   - aside: the cache's own store of copies;
//   - otter: otter alone, with the same weigher (the ceiling: the same
//     policy without aside's index and invalidation bookkeeping);
//   - drop: the store before the byte budget, a count of copies past which
//     arbitrary ones were dropped down to 7/8 of the bound, here with the
//     count that the budget holds on average.
const (
	zipfRecords = 1_000_000
	zipfS       = 1.1
	zipfWarm    = 2_000_000
	zipfShare   = 10 // percent of the records' bytes that fit
)

type zipfWorkload struct {
	ids    []uint64 // the read sequence, warm-up first
	keys   []string // Redis key of each record
	sizes  []uint32 // stored size of each record
	budget int64
	mean   int64 // mean weight of a copy
}

var zipfOnce = sync.OnceValue(func() *zipfWorkload {
	r := rand.New(rand.NewPCG(1, 2))
	w := &zipfWorkload{keys: make([]string, zipfRecords), sizes: make([]uint32, zipfRecords)}
	var total int64
	for i := range zipfRecords {
		w.keys[i] = "zipf:" + strconv.Itoa(i)
		// Stored sizes from 64 B to 2 KiB, more of them small.
		w.sizes[i] = uint32(64 + r.IntN(64)*r.IntN(32))
		total += copyWeight(w.keys[i], w.sizes[i])
	}
	w.mean = total / zipfRecords
	w.budget = total * zipfShare / 100
	// rand.Zipf draws 0 most often; ids are shuffled so that the hot records
	// are spread over the key space as real ids are.
	perm := r.Perm(zipfRecords)
	z := rand.NewZipf(rand.New(rand.NewPCG(3, 4)), zipfS, 1, zipfRecords-1)
	w.ids = make([]uint64, zipfWarm+8_000_000)
	for i := range w.ids {
		w.ids[i] = uint64(perm[z.Uint64()])
	}
	return w
})

// zipfPolicy is one store of copies under test.
type zipfPolicy interface {
	read(id uint64) bool // reports a hit; stores a copy on a miss
}

func BenchmarkLocalZipf(b *testing.B) {
	w := zipfOnce()
	for _, p := range []struct {
		name string
		make func() zipfPolicy
	}{
		{"aside", func() zipfPolicy { return &asidePolicy{w: w, l: newLocal[uint64, struct{}](w.budget)} }},
		{"otter", func() zipfPolicy { return newOtterPolicy(w) }},
		{"drop", func() zipfPolicy { return &dropPolicy{w: w, max: int(w.budget / w.mean)} }},
	} {
		b.Run("policy="+p.name, func(b *testing.B) {
			pol := p.make()
			for _, id := range w.ids[:zipfWarm] {
				pol.read(id)
			}
			reads := w.ids[zipfWarm:]
			hits := 0
			b.ResetTimer()
			for i := range b.N {
				if pol.read(reads[i%len(reads)]) {
					hits++
				}
			}
			b.StopTimer()
			b.ReportMetric(100*float64(hits)/float64(b.N), "hit-%")
			b.ReportMetric(float64(w.budget)/(1<<20), "budget-MiB")
		})
	}
}

type asidePolicy struct {
	w *zipfWorkload
	l *local[uint64, struct{}]
}

func (p *asidePolicy) read(id uint64) bool {
	if _, ok := p.l.get(id, 1); ok {
		return true
	}
	key := p.w.keys[id]
	p.l.store(id, &entry[struct{}]{key: key, size: p.w.sizes[id]}, p.l.snapshot(key))
	return false
}

type otterPolicy struct {
	w *zipfWorkload
	c *otter.Cache[uint64, uint32]
}

func newOtterPolicy(w *zipfWorkload) *otterPolicy {
	return &otterPolicy{w: w, c: otter.Must(&otter.Options[uint64, uint32]{
		MaximumWeight: uint64(w.budget),
		Weigher:       func(id uint64, size uint32) uint32 { return uint32(copyWeight(w.keys[id], size)) },
		Executor:      func(fn func()) { fn() },
	})}
}

func (p *otterPolicy) read(id uint64) bool {
	if _, ok := p.c.GetIfPresent(id); ok {
		return true
	}
	p.c.Set(id, p.w.sizes[id])
	return false
}

// dropPolicy is the former store's eviction: past max copies, arbitrary
// ones (Go's map order) are dropped until 7/8 of max remain.
type dropPolicy struct {
	w   *zipfWorkload
	m   map[uint64]struct{}
	max int
}

func (p *dropPolicy) read(id uint64) bool {
	if p.m == nil {
		p.m = make(map[uint64]struct{}, p.max)
	}
	if _, ok := p.m[id]; ok {
		return true
	}
	p.m[id] = struct{}{}
	if len(p.m) > p.max {
		for k := range p.m {
			delete(p.m, k)
			if len(p.m) <= p.max-p.max/8 {
				break
			}
		}
	}
	return false
}
