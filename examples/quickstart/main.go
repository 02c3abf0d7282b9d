// Command quickstart walks through the operations of the Redis data guide with
// aside's typed API, printing what each step did and what Redis answered. It
// exits non-zero as soon as a result differs from what the step expects.
//
// It connects to REDIS_URL (default redis://localhost:6379). When nothing
// answers there and redis-server is on PATH, it starts a private one on a free
// port for the run.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/redistest"
	"github.com/aside-go/aside/invalidation"
	"github.com/aside-go/aside/loader"
	"github.com/aside-go/aside/ttlpolicy"
)

// User is what the application caches.
type User struct {
	ID    int64
	Name  string
	Email string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart failed:", err)
		os.Exit(1)
	}
	fmt.Println("all steps passed")
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	opt, stop, err := redisOption()
	if err != nil {
		return err
	}
	defer stop()

	client, err := cache.Connect(opt)
	if err != nil {
		return err
	}
	defer client.Close()

	// The "database": the source of truth the cache sits in front of.
	db := map[int64]User{1001: {1001, "Alice", "alice@example.com"}, 1002: {1002, "Bob", "bob@example.com"}}
	var loads atomic.Int64
	users, err := cache.New(client, cache.Options[int64, User]{
		Namespace: "quickstart-user",
		TTL:       ttlpolicy.Minutes(5), // frequently changing data: minutes, ±10% jitter
		Loader: func(ctx context.Context, id int64) (User, error) {
			loads.Add(1)
			u, ok := db[id]
			if !ok {
				return User{}, loader.ErrNotFound
			}
			return u, nil
		},
	})
	if err != nil {
		return err
	}
	// Start from a clean slate when pointed at a shared server.
	if _, err := users.Delete(ctx, 1001, 1002, 1003, 2001, 2002, 2003); err != nil {
		return err
	}
	defer users.Delete(context.WithoutCancel(ctx), 1001, 1002, 1003, 2001, 2002, 2003) //nolint:errcheck

	s := &steps{}

	s.step("SET and GET a value", func() error {
		alice := User{2001, "Alice", "alice@example.com"}
		if err := users.Set(ctx, 2001, alice); err != nil {
			return err
		}
		got, err := users.Get(ctx, 2001)
		if err != nil {
			return err
		}
		return expect(got, alice, "GET %s", users.Key(2001))
	})

	s.step("many keys at once (MSET / MGET, one round trip each)", func() error {
		if err := users.SetMany(ctx, map[int64]User{
			2002: {2002, "Carol", "carol@example.com"},
			2003: {2003, "Dave", "dave@example.com"},
		}); err != nil {
			return err
		}
		got, err := users.GetMany(ctx, []int64{2001, 2002, 2003})
		if err != nil {
			return err
		}
		if err := expect(len(got), 3, "GetMany 2001 2002 2003: values found"); err != nil {
			return err
		}
		return expect(got[2003].Name, "Dave", "GetMany: user 2003")
	})

	s.step("EXISTS counts keys, a key named twice counts twice", func() error {
		n, err := users.Exists(ctx, 2001, 2002, 2001, 9999)
		if err != nil {
			return err
		}
		return expect(n, 3, "EXISTS 2001 2002 2001 9999")
	})

	s.step("DEL returns how many keys it removed", func() error {
		n, err := users.Delete(ctx, 2002, 2003, 9999)
		if err != nil {
			return err
		}
		return expect(n, 2, "DEL 2002 2003 9999")
	})

	s.step("a value with an expiry in seconds (SETEX)", func() error {
		if err := users.Set(ctx, 2002, User{ID: 2002}, cache.WithTTL(10*time.Second)); err != nil {
			return err
		}
		ttl, err := users.TTL(ctx, 2002)
		if err != nil {
			return err
		}
		return within(ttl, 9*time.Second, 10*time.Second, "PTTL after SET PX 10000")
	})

	s.step("a value with an expiry in milliseconds (PSETEX)", func() error {
		if err := users.Set(ctx, 2003, User{ID: 2003}, cache.WithTTL(1500*time.Millisecond)); err != nil {
			return err
		}
		ttl, err := users.TTL(ctx, 2003)
		if err != nil {
			return err
		}
		return within(ttl, time.Second, 1500*time.Millisecond, "PTTL after SET PX 1500")
	})

	s.step("adding and inspecting an expiry (EXPIRE, EXPIREAT, TTL)", func() error {
		ok, err := users.Expire(ctx, 2001, time.Minute)
		if err != nil {
			return err
		}
		if err := expect(ok, true, "PEXPIRE 60000"); err != nil {
			return err
		}
		ok, err = users.ExpireAt(ctx, 2001, time.Now().Add(2*time.Hour))
		if err != nil {
			return err
		}
		if err := expect(ok, true, "PEXPIREAT +2h"); err != nil {
			return err
		}
		ttl, err := users.TTL(ctx, 2001)
		if err != nil {
			return err
		}
		return within(ttl, 2*time.Hour-time.Minute, 2*time.Hour, "PTTL")
	})

	s.step("PERSIST removes the expiry", func() error {
		ok, err := users.Persist(ctx, 2001)
		if err != nil {
			return err
		}
		if err := expect(ok, true, "PERSIST"); err != nil {
			return err
		}
		ttl, err := users.TTL(ctx, 2001)
		if err != nil {
			return err
		}
		fmt.Printf("    PTTL of a key without expiry -> cache.NoExpiry (not -1): %v\n", ttl == cache.NoExpiry)
		if ttl != cache.NoExpiry {
			return fmt.Errorf("PTTL after PERSIST: got %v, want cache.NoExpiry", ttl)
		}
		return nil
	})

	s.step("cache-aside with a TTL: the first read loads, the next ones do not", func() error {
		before := users.Stats()
		for i, want := range []cache.Source{cache.SourceLoader, cache.SourceLocal, cache.SourceLocal} {
			var src cache.Source
			u, err := users.Get(ctx, 1001, cache.SourceOf(&src))
			if err != nil {
				return err
			}
			fmt.Printf("    read %d of user 1001: %s, from %s\n", i+1, u.Name, src)
			if err := expect(src, want, "where the read came from"); err != nil {
				return err
			}
		}
		ttl, err := users.TTL(ctx, 1001)
		if err != nil {
			return err
		}
		fmt.Printf("    the loaded value's TTL in Redis: %v (5 minutes, ±10%% jitter)\n", ttl.Round(time.Second))
		printCounters(before, users.Stats())
		return expect(loads.Load(), int64(1), "loader calls")
	})

	s.step("another process reads the value from Redis, and hears of its invalidation", func() error {
		// A second client stands for a second process of the same service.
		other, err := cache.Connect(opt)
		if err != nil {
			return err
		}
		defer other.Close()
		theirs, err := cache.New(other, cache.Options[int64, User]{
			Namespace: "quickstart-user",
			Loader: func(_ context.Context, id int64) (User, error) {
				loads.Add(1)
				return db[id], nil
			},
		})
		if err != nil {
			return err
		}
		var src cache.Source
		u, err := theirs.Get(ctx, 1001, cache.SourceOf(&src))
		if err != nil {
			return err
		}
		fmt.Printf("    the other process reads user 1001: %s, from %s\n", u.Name, src)
		if err := expect(src, cache.SourceRedis, "where its first read came from"); err != nil {
			return err
		}
		if u, err = theirs.Get(ctx, 1001, cache.SourceOf(&src)); err != nil {
			return err
		}
		fmt.Printf("    and again: %s, from %s\n", u.Name, src)
		// This process updates the source and invalidates: Redis pushes the
		// invalidation to the other process, which drops its copy.
		db[1001] = User{1001, "Alice A.", "alice@example.com"}
		start := time.Now()
		if err := users.Invalidate(ctx, 1001); err != nil {
			return err
		}
		for u.Name != "Alice A." && time.Since(start) < 10*time.Second {
			if u, err = theirs.Get(ctx, 1001, cache.SourceOf(&src)); err != nil {
				return err
			}
		}
		fmt.Printf("    after this process's Invalidate, the other reads: %s, from %s (%v later)\n", u.Name, src, time.Since(start).Round(time.Microsecond))
		return expect(u.Name, "Alice A.", "the other process's read after the invalidation")
	})

	s.step("invalidation on update: write the source, invalidate, read the new value", func() error {
		db[1001] = User{1001, "Alice Smith", "alice@example.com"}
		if err := users.Invalidate(ctx, 1001); err != nil {
			return err
		}
		u, err := users.Get(ctx, 1001)
		if err != nil {
			return err
		}
		if err := expect(u.Name, "Alice Smith", "GET after the update"); err != nil {
			return err
		}
		return expect(loads.Load(), int64(3), "loader calls (this process twice, the other once)")
	})

	s.step("pattern invalidation with SCAN (never KEYS)", func() error {
		pages, err := cache.New(client, cache.Options[string, string]{Namespace: "quickstart-page", Codec: codec.String()})
		if err != nil {
			return err
		}
		if err := pages.SetMany(ctx, map[string]string{
			"tenant:acme*:home": "a", "tenant:acme*:about": "b", "tenant:acme:home": "c", "tenant:other:home": "d",
		}); err != nil {
			return err
		}
		// The tenant name comes from a user: escape it, so "acme*" matches
		// only itself and never "acme".
		tenant := "acme*"
		n, err := pages.InvalidatePattern(ctx, "tenant:"+invalidation.Escape(tenant)+":*")
		if err != nil {
			return err
		}
		if err := expect(n, int64(2), "InvalidatePattern tenant:acme\\*:* removed"); err != nil {
			return err
		}
		left, err := pages.Exists(ctx, "tenant:acme:home", "tenant:other:home")
		if err != nil {
			return err
		}
		if err := expect(left, 2, "keys of other tenants left"); err != nil {
			return err
		}
		_, err = pages.InvalidatePrefix(ctx, "tenant:")
		return err
	})

	s.step("error handling: absent records, missing keys, a cancelled context", func() error {
		_, err := users.Get(ctx, 1003)
		if !errors.Is(err, cache.ErrNotFound) {
			return fmt.Errorf("GET of an absent record: got %v, want cache.ErrNotFound", err)
		}
		fmt.Printf("    absent record: %v\n", err)
		if _, err := users.TTL(ctx, 9999); !errors.Is(err, cache.ErrKeyMissing) {
			return fmt.Errorf("TTL of a missing key: got %v, want cache.ErrKeyMissing", err)
		} else {
			fmt.Printf("    missing key: %v\n", err)
		}
		done, cancel := context.WithCancel(ctx)
		cancel()
		if err := users.Set(done, 2001, User{}); !errors.Is(err, context.Canceled) {
			return fmt.Errorf("SET with a cancelled context: got %v, want context.Canceled", err)
		}
		fmt.Println("    cancelled context: context.Canceled")
		return nil
	})

	return s.err
}

// redisOption returns the connection options for REDIS_URL, or for a private
// redis-server when nothing answers there.
func redisOption() (rueidis.ClientOption, func(), error) {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://localhost:6379"
	}
	return redistest.ForURL(url, func(s string) { fmt.Println(s) })
}

// printCounters prints what a cache's counters did between two snapshots.
func printCounters(before, after cache.Stats) {
	fmt.Printf("    this step: loads=%d local hits=%d redis hits=%d misses=%d\n",
		after.Loads-before.Loads, after.LocalHits-before.LocalHits, after.RedisHits-before.RedisHits, after.Misses-before.Misses)
}

type steps struct {
	n   int
	err error
}

func (s *steps) step(title string, f func() error) {
	if s.err != nil {
		return
	}
	s.n++
	fmt.Printf("step %d: %s\n", s.n, title)
	if err := f(); err != nil {
		s.err = fmt.Errorf("step %d (%s): %w", s.n, title, err)
		return
	}
	fmt.Println("    ok")
}

func expect[T comparable](got, want T, what string, args ...any) error {
	label := fmt.Sprintf(what, args...)
	fmt.Printf("    %s -> %v\n", label, got)
	if got != want {
		return fmt.Errorf("%s: got %v, want %v", label, got, want)
	}
	return nil
}

func within(got, lo, hi time.Duration, what string) error {
	fmt.Printf("    %s -> %v\n", what, got)
	if got < lo || got > hi {
		return fmt.Errorf("%s: got %v, want between %v and %v", what, got, lo, hi)
	}
	return nil
}
