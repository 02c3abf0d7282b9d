package cache_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/aside-go/aside/cache"
)

// The benchmarks use the package's private redis-server on loopback and a
// User of about 150 bytes in MessagePack.

func BenchmarkGetLocalHit(b *testing.B) {
	ctx := context.Background()
	c := userCache(b, nil, namespace(b), nil)
	warm(b, c, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Get(ctx, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetLocalHitParallel(b *testing.B) {
	ctx := context.Background()
	c := userCache(b, nil, namespace(b), nil)
	for id := int64(0); id < 64; id++ {
		warm(b, c, id)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var seq atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		id := seq.Add(1)
		for pb.Next() {
			if _, err := c.Get(ctx, id%64); err != nil {
				b.Fatal(err)
			}
			id++
		}
	})
}

// BenchmarkGetRedisHit reads a value that is in Redis but not in process
// memory: a client without client-side caching, so one round trip each.
func BenchmarkGetRedisHit(b *testing.B) {
	ctx := context.Background()
	opt := shared.ClientOption()
	opt.DisableCache = true
	c := userCache(b, connectWith(b, opt), namespace(b), nil)
	if err := c.Set(ctx, 1, sampleUser(1)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Get(ctx, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetMiss reads a key absent from Redis each time: GET, the loader
// (which returns at once) and the write-back.
func BenchmarkGetMiss(b *testing.B) {
	ctx := context.Background()
	c := userCache(b, nil, namespace(b), nil)
	b.ReportAllocs()
	b.ResetTimer()
	var id int64
	for b.Loop() {
		id++
		if _, err := c.Get(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandWrittenGetSet is the miss that an application writes itself
// with rueidis: GET, decode on a hit, else load, encode and SET with PX.
func BenchmarkHandWrittenGetSet(b *testing.B) {
	ctx := context.Background()
	client := connect(b, shared)
	rc := client.Rueidis()
	ns := namespace(b) + ":"
	b.ReportAllocs()
	b.ResetTimer()
	var id int64
	for b.Loop() {
		id++
		key := ns + strconv.FormatInt(id, 10)
		raw, err := rc.Do(ctx, rc.B().Get().Key(key).Build()).AsBytes()
		if err == nil {
			var u User
			if err := msgpack.Unmarshal(raw, &u); err != nil {
				b.Fatal(err)
			}
			continue
		}
		u := sampleUser(id)
		data, err := msgpack.Marshal(u)
		if err != nil {
			b.Fatal(err)
		}
		if err := rc.Do(ctx, rc.B().Set().Key(key).Value(string(data)).PxMilliseconds(300_000).Build()).Error(); err != nil {
			b.Fatal(err)
		}
	}
}

var _ = cache.NoExpiry
