package cache_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/aside-go/aside/asidetest"
	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/ttlpolicy"
)

// Unlike the examples that connect to REDIS_ADDR, these run, against the
// tests' private redis-server.

// exampleClient connects to the tests' private redis-server.
func exampleClient() *cache.Client {
	if shared == nil {
		log.Fatal(sharedErr)
	}
	client, err := cache.Connect(shared.ClientOption())
	if err != nil {
		log.Fatal(err)
	}
	return client
}

// A read that must answer in time: the report's load takes longer than
// the read may wait, so the read fails with ErrLoadTimeout — and the load
// goes on, and writes the report for the next read, here or in any process.
func ExampleLoadTimeouts() {
	client := exampleClient()
	defer client.Close()
	ctx := context.Background()
	slow := make(chan struct{})
	reports, err := cache.New(client, cache.Options[string, string]{
		Namespace: "example-report",
		Codec:     codec.String(),
		Loader: func(ctx context.Context, id string) (string, error) {
			<-slow // a report that takes its time
			return "report " + id, nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := reports.Delete(ctx, "q3"); err != nil {
		log.Fatal(err)
	}

	_, err = reports.Get(ctx, "q3", cache.LoadTimeouts(0, 50*time.Millisecond))
	fmt.Println("timed out:", errors.Is(err, cache.ErrLoadTimeout))

	close(slow)                        // the load ends...
	_ = reports.AwaitWrites(ctx, "q3") // ...and writes the report to Redis
	r, err := reports.Get(ctx, "q3")
	fmt.Println(r, err)
	// Output:
	// timed out: true
	// report q3 <nil>
}

// A price refreshed synchronously after half an hour keeps being served
// when its source is down (FailSafe), flagged stale, and the source is asked
// again at most once a minute across the fleet (FailSafeThrottle).
func ExampleOptions_failSafe() {
	client := exampleClient()
	defer client.Close()
	ctx := context.Background()
	clock := asidetest.NewClock(time.Now()) // the example's time
	var down atomic.Bool
	prices, err := cache.New(client, cache.Options[string, int64]{
		Namespace:        "example-price",
		TTL:              ttlpolicy.Fixed(time.Hour).WithSoft(0.5),
		Refresh:          cache.RefreshSync,
		FailSafe:         true,
		FailSafeThrottle: time.Minute,
		Now:              clock.Now,
		Loader: func(ctx context.Context, symbol string) (int64, error) {
			if down.Load() {
				return 0, errors.New("quotes API down")
			}
			return 4200, nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := prices.Delete(ctx, "ACME"); err != nil {
		log.Fatal(err)
	}
	p, err := prices.Get(ctx, "ACME")
	fmt.Println(p, err)

	clock.Add(31 * time.Minute) // due for its refresh
	down.Store(true)
	var src cache.Source
	p, err = prices.Get(ctx, "ACME", cache.SourceOf(&src))
	fmt.Println(p, src, err)
	fmt.Println("fail-safe:", prices.Stats().FailSafeServed)
	// Output:
	// 4200 <nil>
	// 4200 stale <nil>
	// fail-safe: 1
}

// Page is a document fetched with its validator.
type Page struct {
	ETag string
	Body string
}

// A conditional refresh: the loader sends the ETag of the page it refreshes
// (Previous) and, when the server answers "304 Not Modified", returns
// ErrNotModified: the page in Redis lives on, without being encoded again.
func ExamplePrevious() {
	client := exampleClient()
	defer client.Close()
	ctx := context.Background()
	clock := asidetest.NewClock(time.Now())
	const current = `"v1"` // the ETag the origin serves
	pages, err := cache.New(client, cache.Options[string, Page]{
		Namespace: "example-page",
		TTL:       ttlpolicy.Fixed(time.Hour).WithSoft(0.5),
		Refresh:   cache.RefreshSync,
		Now:       clock.Now,
		Loader: func(ctx context.Context, url string) (Page, error) {
			if prev, ok := cache.Previous[Page](ctx); ok && prev.ETag == current {
				return Page{}, fmt.Errorf("GET %s: 304: %w", url, cache.ErrNotModified)
			}
			return Page{ETag: current, Body: "<h1>hello</h1>"}, nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := pages.Delete(ctx, "/index.html"); err != nil {
		log.Fatal(err)
	}
	p, err := pages.Get(ctx, "/index.html")
	fmt.Println(p.Body, err)

	clock.Add(31 * time.Minute) // due: refreshed before it is returned
	p, err = pages.Get(ctx, "/index.html")
	fmt.Println(p.Body, err)
	fmt.Println("not modified:", pages.Stats().NotModified)
	// Output:
	// <h1>hello</h1> <nil>
	// <h1>hello</h1> <nil>
	// not modified: 1
}
