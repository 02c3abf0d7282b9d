package cache_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/invalidation"
	"github.com/aside-go/aside/loader"
	"github.com/aside-go/aside/ttlpolicy"
)

// The examples need a Redis server, so they are compiled but not run: each
// connects to the address in REDIS_ADDR.

type Product struct {
	ID    int64
	Name  string
	Price int64 // cents
}

// db stands for the application's source of truth.
var db = struct {
	Product  func(ctx context.Context, id int64) (Product, error)
	Products func(ctx context.Context, ids []int64) (map[int64]Product, error)
}{
	Product: func(ctx context.Context, id int64) (Product, error) {
		if id > 1000 {
			return Product{}, loader.ErrNotFound
		}
		return Product{ID: id, Name: fmt.Sprintf("product %d", id), Price: 100 * id}, nil
	},
	Products: func(ctx context.Context, ids []int64) (map[int64]Product, error) {
		out := make(map[int64]Product, len(ids))
		for _, id := range ids {
			if id <= 1000 {
				out[id] = Product{ID: id, Name: fmt.Sprintf("product %d", id), Price: 100 * id}
			}
		}
		return out, nil
	},
}

// products builds the cache the examples share.
func productCache(client *cache.Client) *cache.Cache[int64, Product] {
	c, err := cache.New(client, cache.Options[int64, Product]{
		Namespace:   "product",
		TTL:         ttlpolicy.Minutes(10).WithNegativeTTL(30 * time.Second),
		Loader:      db.Product,
		BatchLoader: db.Products,
	})
	if err != nil {
		log.Fatal(err)
	}
	return c
}

func connectLocal() *cache.Client {
	client, err := cache.Connect(rueidis.ClientOption{InitAddress: []string{os.Getenv("REDIS_ADDR")}})
	if err != nil {
		log.Fatal(err)
	}
	return client
}

func ExampleConnect() {
	client, err := cache.Connect(rueidis.ClientOption{InitAddress: []string{os.Getenv("REDIS_ADDR")}})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	// Without client tracking (a proxy that refuses it), caches keep no
	// copies in process memory and every Get reads Redis.
	fmt.Println("copies in process memory:", client.Tracking())
}

func ExampleNew() {
	client := connectLocal()
	defer client.Close()
	products, err := cache.New(client, cache.Options[int64, Product]{
		Namespace: "product",
		// Ten minutes ±10%, refreshed ahead after eight; absent records
		// remembered for 30 seconds.
		TTL: ttlpolicy.Minutes(10).WithSoft(0.8).WithNegativeTTL(30 * time.Second),
		Loader: func(ctx context.Context, id int64) (Product, error) {
			return db.Product(ctx, id) // loader.ErrNotFound when there is none
		},
	})
	if err != nil {
		log.Fatal(err) // names the option at fault
	}
	fmt.Println(products.Key(42)) // product:42
}

func ExampleCache_Get() {
	client := connectLocal()
	defer client.Close()
	products := productCache(client)
	ctx := context.Background()

	p, err := products.Get(ctx, 42) // memory, else Redis, else the loader (once)
	switch {
	case errors.Is(err, cache.ErrNotFound):
		fmt.Println("no such product")
	case errors.Is(err, cache.ErrUnavailable):
		fmt.Println("Redis is down and the cache fails fast")
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println(p.Name)
	}
}

func ExampleCache_GetMany() {
	client := connectLocal()
	defer client.Close()
	products := productCache(client)

	// One round trip for the keys not in memory, one batch load for the
	// missing ones; absent records are absent from the map.
	found, err := products.GetMany(context.Background(), []int64{1, 2, 3, 5000})
	var failed *loader.KeyError[int64]
	if errors.As(err, &failed) {
		fmt.Println("first key that failed:", failed.Key)
	}
	fmt.Println(len(found), "products")
}

func ExampleCache_Set() {
	client := connectLocal()
	defer client.Close()
	products := productCache(client)
	ctx := context.Background()

	p := Product{ID: 7, Name: "kettle", Price: 2999}
	// SET with PX: the policy's TTL, or the call's own.
	if err := products.Set(ctx, p.ID, p, cache.WithTTL(time.Hour), cache.WithTags("kitchen")); err != nil {
		log.Fatal(err)
	}
	// Every cache of the client reads the new value from now on; other
	// processes drop their copies when Redis pushes the invalidation.
	got, _ := products.Get(ctx, p.ID)
	fmt.Println(got.Name)
}

func ExampleCache_Invalidate() {
	client := connectLocal()
	defer client.Close()
	products := productCache(client)
	ctx := context.Background()

	// After the source of truth changed: the next Get of each key, in every
	// process, loads it again.
	if err := products.Invalidate(ctx, 7, 8); err != nil {
		log.Fatal(err)
	}
}

func ExampleNew_staleWhileReloading() {
	client := connectLocal()
	defer client.Close()
	// A catalogue page that may show a price 50ms old, but must not wait for
	// a reload each time another instance updates a product.
	products, err := cache.New(client, cache.Options[int64, Product]{
		Namespace:           "product",
		Loader:              db.Product,
		StaleWhileReloading: 50 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	var src cache.Source
	p, err := products.Get(context.Background(), 7, cache.SourceOf(&src))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Name, "from", src)
}

func ExampleCache_Clear() {
	client := connectLocal()
	defer client.Close()
	products := productCache(client)

	// After a bulk import: every entry of the cache, in every process, is
	// missing from now on. One INCR, however many keys there are.
	if _, err := products.Clear(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func ExampleCache_InvalidatePattern() {
	client := connectLocal()
	defer client.Close()
	products := productCache(client)

	// SCAN on every primary, never KEYS; the user's part is escaped so that
	// it matches only itself.
	category := "tools*" // from a request
	n, err := products.InvalidatePattern(context.Background(), "cat:"+invalidation.Escape(category)+":*",
		cache.WithProgress(func(p invalidation.Progress) { log.Printf("%d of %d keys scanned removed", p.Removed, p.Scanned) }))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "keys removed")
}

func ExampleCache_InvalidateTag() {
	client := connectLocal()
	defer client.Close()
	products := productCache(client)
	ctx := context.Background()

	_ = products.Set(ctx, 7, Product{ID: 7, Name: "kettle"}, cache.WithTags("kitchen"))
	_ = products.Set(ctx, 8, Product{ID: 8, Name: "toaster"}, cache.WithTags("kitchen"))
	n, err := products.InvalidateTag(ctx, "kitchen")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "keys removed") // 2
}
