package cache

import (
	"context"
	"fmt"
	"sync"
)

// Adapt sets, from inside a loader, how the value it is about to return is
// cached — its TTL ([WithTTL], which also drops the policy's soft TTL, as
// for Set) and its tags ([WithTags]), so that tag invalidation reaches
// loaded values:
//
//	Loader: func(ctx context.Context, id int64) (Product, error) {
//		p, err := db.LoadProduct(ctx, id)
//		if err != nil {
//			return p, err
//		}
//		err = cache.Adapt(ctx, cache.WithTags("category:"+p.Category), cache.WithTTL(time.Hour))
//		return p, err
//	}
//
// In a [Options].BatchLoader, Adapt concerns every value of the batch; name
// a key with [AdaptKey]. (With only a Loader, each call loads one key, and
// Adapt concerns that key, whether the load was of one key or of a
// GetMany.) The tags are written before the value, so an InvalidateTag that
// returns after the value is in Redis finds it. A value the loader returns
// with [loader.NoCache] is not written at all.
//
// Adapt fails with an error wrapping [ErrInvalidOptions] for an invalid
// option, or when ctx is not a loader call's of this package (a refresh's
// loader call is one: what it returns is written the same way).
func Adapt(ctx context.Context, opts ...Option) error {
	a, ok := ctx.Value(adaptKey{}).(*adaptation)
	if !ok {
		return fmt.Errorf("cache: adapt: %w: not inside a loader call of a Cache", ErrInvalidOptions)
	}
	return a.add(a.scope, a.scoped, opts)
}

// AdaptKey is [Adapt] for the value of key k alone, from inside a
// BatchLoader (or a Loader) of a Cache[K, V].
func AdaptKey[K comparable](ctx context.Context, k K, opts ...Option) error {
	a, ok := ctx.Value(adaptKey{}).(*adaptation)
	if !ok {
		return fmt.Errorf("cache: adapt: %w: not inside a loader call of a Cache", ErrInvalidOptions)
	}
	return a.add(k, true, opts)
}

type adaptKey struct{}

// adaptation collects what the calls of Adapt of one loadKeys said.
type adaptation struct {
	mu   sync.Mutex
	all  callOptions         // for every key of the load; guarded by mu
	keys map[any]callOptions // for one key each; guarded by mu
	// scope and scoped: a Loader call that a batch adapter made for one key
	// (see scopedLoad), whose Adapt concerns that key. Its adaptation
	// shares mu, all and keys with the load's (root).
	scope  any
	scoped bool
	root   *adaptation
}

// add records opts for key k (scoped) or for every key.
func (a *adaptation) add(k any, scoped bool, opts []Option) error {
	co := callOpts(opts)
	if co.err != nil {
		return fmt.Errorf("cache: adapt: %w", co.err)
	}
	if a.root != nil {
		a = a.root
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !scoped {
		a.all = a.all.merge(co)
		return nil
	}
	if a.keys == nil {
		a.keys = make(map[any]callOptions)
	}
	a.keys[k] = a.keys[k].merge(co)
	return nil
}

// of returns what was said of key k.
func (a *adaptation) of(k any) callOptions {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.all.merge(a.keys[k])
}

// merge is co with o's TTL, when set, and o's tags after co's.
func (co callOptions) merge(o callOptions) callOptions {
	if o.ttl != 0 {
		co.ttl = o.ttl
	}
	if len(o.tags) > 0 {
		co.tags = append(co.tags[:len(co.tags):len(co.tags)], o.tags...)
	}
	return co
}

// scopedLoad is Loader for the batch adapter: each call's Adapt concerns
// its own key.
func (c *Cache[K, V]) scopedLoad(ctx context.Context, k K) (V, error) {
	if a, ok := ctx.Value(adaptKey{}).(*adaptation); ok {
		ctx = context.WithValue(ctx, adaptKey{}, &adaptation{scope: k, scoped: true, root: a})
	}
	return c.userLoad(ctx, k)
}
