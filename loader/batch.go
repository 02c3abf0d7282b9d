package loader

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// DefaultBatchLimit is the number of keys that [Func.Batch] loads at a time
// when its limit is 0 or less: enough to hide the latency of a remote source,
// few enough not to exhaust a database connection pool.
const DefaultBatchLimit = 16

// Batch adapts f to a [BatchFunc] that loads the keys concurrently, at most
// limit at a time (limit <= 0 means [DefaultBatchLimit]), for sources that
// have no multi-key query.
//
// A key whose load returns [ErrNotFound] (wrapped or not) is left out of
// the map; one whose load returns [NoCache] is in the map, and named by a
// [*KeyError] wrapping NoCache. Every other failure is returned, joined with errors.Join, as a
// [*KeyError] naming the key, next to the map of the keys that did load. A
// panic in a load fails its key with a [*PanicError], a runtime.Goexit with
// [ErrGoexit]; the other keys still load. Keys not yet started when ctx ends
// fail with ctx.Err().
//
// The map is never nil. A key repeated in keys is loaded once per
// occurrence.
func (f Func[K, V]) Batch(limit int) BatchFunc[K, V] {
	if limit <= 0 {
		limit = DefaultBatchLimit
	}
	return func(ctx context.Context, keys []K) (map[K]V, error) {
		if len(keys) == 0 {
			return map[K]V{}, nil
		}
		b := &batch[K, V]{load: f, keys: keys, vals: make([]V, len(keys)), errs: make([]error, len(keys))}
		// limit workers take the keys in order: no goroutine per key, and
		// never more than limit loads at a time.
		workers := min(limit, len(keys))
		b.wg.Add(workers)
		for range workers {
			go b.work(ctx)
		}
		b.wg.Wait()

		found := make(map[K]V, len(keys))
		var failed []error
		for i, k := range keys {
			switch err := b.errs[i]; {
			case err == nil:
				found[k] = b.vals[i]
			case errors.Is(err, NoCache):
				found[k] = b.vals[i]
				failed = append(failed, &KeyError[K]{Key: k, Err: err})
			case errors.Is(err, ErrNotFound):
			default:
				failed = append(failed, &KeyError[K]{Key: k, Err: err})
			}
		}
		return found, errors.Join(failed...)
	}
}

// batch is one call of a BatchFunc made by Func.Batch.
type batch[K comparable, V any] struct {
	load Func[K, V]
	keys []K
	// vals[i] and errs[i] are the result of keys[i], written by the worker
	// that took i and read after wg.Wait.
	vals []V
	errs []error
	next atomic.Int64 // the index of the next key to take
	wg   sync.WaitGroup
}

// work loads keys until there are none left.
func (b *batch[K, V]) work(ctx context.Context) {
	exited := true
	defer func() {
		if exited {
			// A load called runtime.Goexit, which ends this goroutine once
			// the deferred calls have run: a new worker takes over, so
			// that the other keys still load. Add comes before the Done of
			// this worker, so Wait cannot return in between.
			b.wg.Add(1)
			go b.work(ctx)
		}
		b.wg.Done()
	}()
	for {
		i := int(b.next.Add(1) - 1)
		if i >= len(b.keys) {
			exited = false
			return
		}
		if err := ctx.Err(); err != nil {
			b.errs[i] = err
			continue
		}
		b.loadOne(ctx, i)
	}
}

// loadOne loads keys[i] and records its result, or its panic, or its
// runtime.Goexit.
func (b *batch[K, V]) loadOne(ctx context.Context, i int) {
	normalReturn := false
	defer func() {
		if !normalReturn {
			// recover returns nil during runtime.Goexit.
			if r := recover(); r != nil {
				b.errs[i] = newPanicError(r)
			} else {
				b.errs[i] = ErrGoexit
			}
		}
	}()
	b.vals[i], b.errs[i] = b.load(ctx, b.keys[i])
	normalReturn = true
}
