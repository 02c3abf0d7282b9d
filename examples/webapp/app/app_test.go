package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/examples/webapp/app"
	"github.com/aside-go/aside/examples/webapp/internal/pgtest"
	"github.com/aside-go/aside/internal/redistest"
)

// The suite runs on both databases: every test that touches one runs a
// subtest per backend. PostgreSQL is one private server per test binary,
// started by the first test that needs it and stopped by TestMain; each
// test gets a database of its own on it (CREATE DATABASE), so tests stay as
// independent as with a SQLite file each.
var pg struct {
	once sync.Once
	srv  *pgtest.Server
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pg.srv != nil {
		if err := pg.srv.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// postgres returns the shared server, starting it on first use. It fails
// the test (never skips) when PostgreSQL's binaries are missing, saying how
// to install them.
func postgres(t *testing.T) *pgtest.Server {
	t.Helper()
	pg.once.Do(func() { pg.srv, pg.err = pgtest.Launch() })
	if pg.err != nil {
		t.Fatalf("the PostgreSQL half of the suite needs a private server: %v", pg.err)
	}
	return pg.srv
}

// opener opens one instance's handle on a test's database; every instance
// of a test calls the same opener, so they share the database.
type opener func(context.Context) (*app.DB, error)

// backends are the databases the suite runs on. newDB makes a fresh
// database for one test.
var backends = []struct {
	name  string
	newDB func(t *testing.T) opener
}{
	{"sqlite", func(t *testing.T) opener {
		dir := t.TempDir()
		return func(ctx context.Context) (*app.DB, error) { return app.OpenSQLite(ctx, dir) }
	}},
	{"postgres", func(t *testing.T) opener {
		url := postgres(t).NewDatabase(t)
		return func(ctx context.Context) (*app.DB, error) { return app.OpenPostgres(ctx, url) }
	}},
}

// forEachDB runs f as a subtest per backend, each on a fresh database.
func forEachDB(t *testing.T, f func(t *testing.T, open opener)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b.newDB(t)) })
	}
}

// instance is one running copy of the service: its own database handle,
// aside client and HTTP server, on a Redis and a data directory that other
// instances may share.
type instance struct {
	t   *testing.T
	app *app.App
	srv *httptest.Server
}

func newInstance(t *testing.T, redis *redistest.Server, open opener) *instance {
	t.Helper()
	return startInstance(t, redis, open, false)
}

// startInstance is newInstance, or with noCache an instance on the
// database alone (redis is then unused and may be nil).
func startInstance(t *testing.T, redis *redistest.Server, open opener, noCache bool) *instance {
	t.Helper()
	db, err := open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var client *cache.Client
	if !noCache {
		client, err = cache.Connect(redis.ClientOption())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(client.Close)
	}
	metrics, err := app.NewMetrics()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { metrics.Close() })
	a, err := app.New(app.Config{DB: db, Client: client, NoCache: noCache, Recorder: metrics.Recorder, Metrics: metrics.Handler})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &instance{t: t, app: a, srv: srv}
}

// response is a finished request.
type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (in *instance) do(method, path string, body any) response {
	in.t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		default:
			buf, err := json.Marshal(b)
			if err != nil {
				in.t.Fatal(err)
			}
			rd = bytes.NewReader(buf)
		}
	}
	req, err := http.NewRequest(method, in.srv.URL+path, rd)
	if err != nil {
		in.t.Fatal(err)
	}
	res, err := in.srv.Client().Do(req)
	if err != nil {
		in.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		in.t.Fatal(err)
	}
	return response{code: res.StatusCode, header: res.Header, body: b}
}

// expect runs a request and fails the test unless it answers code.
func (in *instance) expect(code int, method, path string, body any) response {
	in.t.Helper()
	r := in.do(method, path, body)
	if r.code != code {
		in.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.code, code, r.body)
	}
	return r
}

func (in *instance) product(path string) (app.Product, string) {
	in.t.Helper()
	r := in.expect(http.StatusOK, "GET", path, nil)
	var p app.Product
	r.decode(in.t, &p)
	return p, r.header.Get("X-Cache")
}

func (in *instance) category(name string) (app.CategoryPage, string) {
	in.t.Helper()
	r := in.expect(http.StatusOK, "GET", "/categories/"+name, nil)
	var p app.CategoryPage
	r.decode(in.t, &p)
	return p, r.header.Get("X-Cache")
}

func find(page app.CategoryPage, id int64) (app.Product, bool) {
	for _, p := range page.Products {
		if p.ID == id {
			return p, true
		}
	}
	return app.Product{}, false
}

// inRedis asserts that the products are in Redis. Exists waits for this
// process's write-backs of loaded values (which finish after Get returned),
// so a count of what Redis holds taken after it sees them.
func (in *instance) inRedis(ids ...int64) {
	in.t.Helper()
	// The writes behind the reads end first (Exists waits for them at most
	// RedisTimeout): a pattern invalidation that ran while one of them was
	// still storing its copy would drop that copy too, however unrelated.
	if err := in.app.Products().AwaitWrites(context.Background(), ids...); err != nil {
		in.t.Fatal(err)
	}
	n, err := in.app.Products().Exists(context.Background(), ids...)
	if err != nil || n != len(ids) {
		in.t.Fatalf("products %v in Redis: %d, %v", ids, n, err)
	}
}

// maxReads bounds the polls for another instance's copy to be dropped by
// Redis's push: a count of reads, never a duration.
const maxReads = 20000

// TestSeedOnFirstStart: two instances opening a new database at the same
// time create it (SQLite: the directory too) and seed 10 000 products once
// (PostgreSQL: under the advisory lock; SQLite: the second waits on the
// file's write lock, within its busy timeout); a third open afterwards finds
// the seed done.
func TestSeedOnFirstStart(t *testing.T) {
	check := func(t *testing.T, open opener) {
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for range 2 {
			wg.Go(func() {
				db, err := open(ctx)
				if err == nil {
					db.Close()
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent first open: %v", err)
			}
		}
		db, err := open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n, seeded, sum int64
		if err := db.QueryRowContext(ctx, `SELECT count(*), sum(price_cents) FROM products`).Scan(&n, &sum); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM seeded`).Scan(&seeded); err != nil {
			t.Fatal(err)
		}
		var want int64
		for i := 1; i <= app.SeedProducts; i++ {
			want += int64(100 + (i*37)%10000)
		}
		if n != app.SeedProducts || seeded != 1 || sum != want {
			t.Fatalf("products: %d (want %d), seeded rows %d (want 1), sum of prices %d (want %d)", n, app.SeedProducts, seeded, sum, want)
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir() + "/nested/data"
		check(t, func(ctx context.Context) (*app.DB, error) { return app.OpenSQLite(ctx, dir) })
	})
	t.Run("postgres", func(t *testing.T) {
		url := postgres(t).NewDatabase(t)
		check(t, func(ctx context.Context) (*app.DB, error) { return app.OpenPostgres(ctx, url) })
	})
}

// TestEndpoints drives every endpoint of one instance.
func TestEndpoints(t *testing.T) { forEachDB(t, testEndpoints) }

func testEndpoints(t *testing.T, dir opener) {
	redis := redistest.Start(t, redistest.Config{})
	a := newInstance(t, redis, dir)

	t.Run("GetProductMissThenLocal", func(t *testing.T) {
		q := a.app.Queries()
		p, src := a.product("/products/7")
		if p.ID != 7 || p.Name != "Product 7" || p.Category != app.CategoryName(7) || p.Version != 1 {
			t.Fatalf("product 7: %+v", p)
		}
		if src != "miss" || a.app.Queries() != q+1 {
			t.Fatalf("first read: X-Cache %q, %d queries, want miss and 1", src, a.app.Queries()-q)
		}
		if _, src := a.product("/products/7"); src != "local" || a.app.Queries() != q+1 {
			t.Fatalf("second read: X-Cache %q, %d queries, want local and 1", src, a.app.Queries()-q)
		}
	})

	t.Run("GetProductFromRedis", func(t *testing.T) {
		a.product("/products/8")        // fills Redis
		b := newInstance(t, redis, dir) // another process's memory, same Redis and database
		if _, src := b.product("/products/8"); src != "redis" {
			t.Fatalf("X-Cache %q, want redis", src)
		}
	})

	t.Run("GetManyOneBatchQuery", func(t *testing.T) {
		q := a.app.Queries()
		r := a.expect(http.StatusOK, "GET", "/products?ids=101,102,103,999999,102", nil)
		var got app.ProductsResponse
		r.decode(t, &got)
		if len(got.Products) != 3 || got.Products[0].ID != 101 || got.Products[2].ID != 103 ||
			len(got.Missing) != 1 || got.Missing[0] != 999999 {
			t.Fatalf("GetMany: %s", r.body)
		}
		if n := a.app.Queries() - q; n != 1 || r.header.Get("X-Cache") != "miss" {
			t.Fatalf("GetMany of four misses: %d queries, X-Cache %q; want one batch query, miss", n, r.header.Get("X-Cache"))
		}
		r = a.expect(http.StatusOK, "GET", "/products?ids=101,104,999999", nil)
		if n := a.app.Queries() - q; n != 2 {
			t.Fatalf("GetMany of one new miss: %d queries in all, want 2", n)
		}
		r = a.expect(http.StatusOK, "GET", "/products?ids=101,104", nil)
		if n := a.app.Queries() - q; n != 2 || r.header.Get("X-Cache") != "local" {
			t.Fatalf("GetMany of cached keys: %d queries, X-Cache %q; want 2, local", n, r.header.Get("X-Cache"))
		}
	})

	t.Run("PutThenGet", func(t *testing.T) {
		a.product("/products/20")
		a.category(app.CategoryName(20))
		r := a.expect(http.StatusOK, "PUT", "/products/20", app.ProductInput{Name: "Lamp", Category: app.CategoryName(20), PriceCents: 999})
		if r.header.Get("X-Cache-Invalidation") != "" {
			t.Fatalf("invalidation failed: %v", r.header)
		}
		// Read-your-writes in the writing instance: no poll.
		p, src := a.product("/products/20")
		if p.Name != "Lamp" || p.Version != 2 || src != "miss" {
			t.Fatalf("after PUT: %+v X-Cache %q", p, src)
		}
		page, src := a.category(app.CategoryName(20))
		if got, ok := find(page, 20); !ok || got.Name != "Lamp" || src != "miss" {
			t.Fatalf("category page after PUT: %+v, X-Cache %q", got, src)
		}
	})

	// A PUT that commits while a category page is being loaded, after the
	// page's query read the product: the page the load returns is older than
	// the PUT, and the PUT's invalidation must keep it out of the cache.
	t.Run("PutDuringCategoryLoad", func(t *testing.T) {
		const id = 55
		name := app.CategoryName(id)
		if err := a.app.Categories().Invalidate(context.Background(), name); err != nil {
			t.Fatal(err)
		}
		queried, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		app.SetCategoryQueried(a.app, func(n string) {
			if n == name {
				once.Do(func() { close(queried); <-release })
			}
		})
		defer app.SetCategoryQueried(a.app, nil)
		loaded := make(chan error, 1)
		go func() {
			res, err := a.srv.Client().Get(a.srv.URL + "/categories/" + name)
			if err == nil {
				_, err = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			loaded <- err
		}()
		<-queried
		r := a.expect(http.StatusOK, "PUT", fmt.Sprintf("/products/%d", id), app.ProductInput{Name: "Raced", Category: name, PriceCents: 5})
		if r.header.Get("X-Cache-Invalidation") != "" {
			t.Fatalf("invalidation failed: %v", r.header)
		}
		close(release)
		if err := <-loaded; err != nil {
			t.Fatal(err)
		}
		for range 2 { // from Redis or the loader, then from process memory
			page, src := a.category(name)
			if got, ok := find(page, id); !ok || got.Name != "Raced" || got.Version != 2 {
				t.Fatalf("category page after a PUT during its load: %+v, X-Cache %q", got, src)
			}
		}
	})

	t.Run("CategoryPagesAreTaggedByTheirProducts", func(t *testing.T) {
		const id = 56
		name := app.CategoryName(id)
		a.category(name) // loaded, and tagged with the products it lists
		if err := a.app.Categories().AwaitWrites(context.Background(), name); err != nil {
			t.Fatal(err)
		}
		n, err := a.app.Categories().InvalidateTag(context.Background(), app.ProductTag(id))
		if err != nil || n != 1 {
			t.Fatalf("InvalidateTag(%s) of the page that lists it: %d keys, %v", app.ProductTag(id), n, err)
		}
		if _, src := a.category(name); src != "miss" {
			t.Fatalf("the page after its tag's invalidation: X-Cache %q, want miss", src)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		a.product("/products/30")
		a.expect(http.StatusNoContent, "DELETE", "/products/30", nil)
		a.expect(http.StatusNotFound, "GET", "/products/30", nil)
		a.expect(http.StatusNotFound, "DELETE", "/products/30", nil)
		page, _ := a.category(app.CategoryName(30))
		if _, ok := find(page, 30); ok {
			t.Fatal("deleted product still on its category page")
		}
	})

	t.Run("CategoryPageCached", func(t *testing.T) {
		name := app.CategoryName(42)
		page, src := a.category(name)
		if src != "miss" || len(page.Products) != app.SeedProducts/app.Categories {
			t.Fatalf("first read: X-Cache %q, %d products", src, len(page.Products))
		}
		q := a.app.Queries()
		if _, src := a.category(name); src != "local" || a.app.Queries() != q {
			t.Fatalf("second read: X-Cache %q, %d queries", src, a.app.Queries()-q)
		}
	})

	t.Run("AdminInvalidatePrefix", func(t *testing.T) {
		for _, id := range []int{5, 50, 51, 6} {
			a.product(fmt.Sprintf("/products/%d", id))
		}
		a.inRedis(5, 50, 51, 6)
		// Literal: "5*" matches no key ("5", "50" and "51" do not start with "5*").
		r := a.expect(http.StatusOK, "POST", "/admin/invalidate?prefix="+url.QueryEscape("5*"), nil)
		var got app.InvalidateResponse
		r.decode(t, &got)
		if got.Removed != 0 {
			t.Fatalf("prefix 5*: removed %d, want 0 (the prefix is literal)", got.Removed)
		}
		r = a.expect(http.StatusOK, "POST", "/admin/invalidate?prefix=5", nil)
		r.decode(t, &got)
		if got.Removed < 3 {
			t.Fatalf("prefix 5: removed %d, want at least 3 (5, 50, 51)", got.Removed)
		}
		q := a.app.Queries()
		if _, src := a.product("/products/50"); src != "miss" || a.app.Queries() != q+1 {
			t.Fatalf("after prefix invalidation: X-Cache %q", src)
		}
		if _, src := a.product("/products/6"); src != "local" || a.app.Queries() != q+1 {
			t.Fatalf("key outside the prefix: X-Cache %q", src)
		}
		r = a.expect(http.StatusOK, "POST", "/admin/invalidate?cache=categories&prefix=c4", nil)
		r.decode(t, &got)
		if got.Removed < 1 {
			t.Fatalf("categories prefix c4: removed %d", got.Removed)
		}
	})

	t.Run("Healthz", func(t *testing.T) {
		r := a.expect(http.StatusOK, "GET", "/healthz", nil)
		var h app.Health
		r.decode(t, &h)
		if h.Status != "ok" || h.Redis != "ok" || !h.Tracking || h.Database != "ok" || h.Products.Loads == 0 ||
			h.Cache != "on" || h.Queries != a.app.Queries() || h.Queries == 0 || (h.Dialect != "sqlite" && h.Dialect != "postgres") {
			t.Fatalf("healthz: %s", r.body)
		}
	})

	t.Run("Metrics", func(t *testing.T) {
		r := a.expect(http.StatusOK, "GET", "/metrics", nil)
		for _, want := range []string{"aside_cache_requests", app.ProductNamespace, app.CategoryNamespace} {
			if !bytes.Contains(r.body, []byte(want)) {
				t.Fatalf("/metrics has no %q:\n%s", want, r.body)
			}
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		for _, c := range []struct{ method, path string }{
			{"GET", "/products/999999"},
			{"PUT", "/products/999999"},
			{"DELETE", "/products/999999"},
			{"GET", "/categories/nosuchcategory"},
		} {
			var body any
			if c.method == "PUT" {
				body = app.ProductInput{Name: "x", Category: "c01"}
			}
			r := a.expect(http.StatusNotFound, c.method, c.path, body)
			var e struct{ Error string }
			r.decode(t, &e)
			if e.Error == "" {
				t.Fatalf("%s %s: no message", c.method, c.path)
			}
		}
	})

	t.Run("BadRequest", func(t *testing.T) {
		many := strings.TrimSuffix(strings.Repeat("1,", app.MaxIDs+1), ",")
		for _, c := range []struct {
			method, path string
			body         any
			message      string
		}{
			{"GET", "/products/abc", nil, "positive integer"},
			{"GET", "/products/0", nil, "positive integer"},
			{"GET", "/products/-3", nil, "positive integer"},
			{"GET", "/products", nil, "ids: required"},
			{"GET", "/products?ids=1,x", nil, "positive integer"},
			{"GET", "/products?ids=" + many, nil, "at most"},
			{"PUT", "/products/x", app.ProductInput{Name: "a", Category: "c01"}, "positive integer"},
			{"PUT", "/products/1", "{not json", "body"},
			{"PUT", "/products/1", `{"name":"a","category":"c01","colour":"red"}`, "body"},
			{"PUT", "/products/1", app.ProductInput{Name: "", Category: "c01"}, "name"},
			{"PUT", "/products/1", app.ProductInput{Name: "a", Category: "Bad Category"}, "category"},
			{"PUT", "/products/1", app.ProductInput{Name: "a", Category: "c01", PriceCents: -1}, "price_cents"},
			{"DELETE", "/products/abc", nil, "positive integer"},
			{"GET", "/categories/" + url.PathEscape("Not*Valid"), nil, "category"},
			{"POST", "/admin/invalidate", nil, "prefix"},
			{"POST", "/admin/invalidate?prefix=1&cache=sessions", nil, "cache"},
		} {
			r := a.expect(http.StatusBadRequest, c.method, c.path, c.body)
			var e struct{ Error string }
			r.decode(t, &e)
			if !strings.Contains(e.Error, c.message) {
				t.Fatalf("%s %s: message %q, want it to mention %q", c.method, c.path, e.Error, c.message)
			}
		}
		// The failed PUTs changed nothing.
		if p, _ := a.product("/products/1"); p.Version != 1 {
			t.Fatalf("product 1 after rejected PUTs: %+v", p)
		}
	})
}

// TestTwoInstances: instances A and B share Redis and the database. After
// PUT on A returns, B's reads return the new product and the category pages
// (old category and new) no longer list the old version — though B held
// both in process memory before the PUT. A's invalidation has deleted the
// keys in Redis when PUT returns; B's local copies are dropped by Redis's
// push, which may land a moment after, so B's reads are polled a bounded
// number of times (a count of reads, never a duration).
func TestTwoInstances(t *testing.T) { forEachDB(t, testTwoInstances) }

func testTwoInstances(t *testing.T, dir opener) {
	redis := redistest.Start(t, redistest.Config{})
	a := newInstance(t, redis, dir)
	b := newInstance(t, redis, dir)

	const id = 77
	oldCat, newCat := app.CategoryName(id), app.CategoryName(id+1)
	for range 2 {
		b.product(fmt.Sprintf("/products/%d", id))
		b.category(oldCat)
		b.category(newCat)
	}
	if _, src := b.product(fmt.Sprintf("/products/%d", id)); src != "local" {
		t.Fatalf("B does not hold product %d in memory (X-Cache %q): the test would prove nothing", id, src)
	}
	if _, src := b.category(oldCat); src != "local" {
		t.Fatalf("B does not hold category %s in memory (X-Cache %q)", oldCat, src)
	}

	a.expect(http.StatusOK, "PUT", fmt.Sprintf("/products/%d", id), app.ProductInput{Name: "Moved", Category: newCat, PriceCents: 1})

	reads := 0
	for {
		reads++
		p, _ := b.product(fmt.Sprintf("/products/%d", id))
		if p.Version == 2 && p.Name == "Moved" && p.Category == newCat {
			break
		}
		if reads == maxReads {
			t.Fatalf("B still serves %+v after %d reads", p, reads)
		}
	}
	t.Logf("B's product read returned the new version on read %d", reads)

	pageReads := 0
	for {
		pageReads++
		old, _ := b.category(oldCat)
		moved, _ := b.category(newCat)
		_, onOld := find(old, id)
		got, onNew := find(moved, id)
		if !onOld && onNew && got.Version == 2 {
			break
		}
		if pageReads == maxReads {
			t.Fatalf("B's category pages after %d reads: on %s %v, on %s %v (%+v)", pageReads, oldCat, onOld, newCat, onNew, got)
		}
	}
	t.Logf("B's category pages were fresh on read %d", pageReads)

	// And the other way round: a DELETE on B is seen by A.
	a.product("/products/78")
	b.expect(http.StatusNoContent, "DELETE", "/products/78", nil)
	for reads = 1; ; reads++ {
		if r := a.do("GET", "/products/78", nil); r.code == http.StatusNotFound {
			break
		}
		if reads == maxReads {
			t.Fatalf("A still serves product 78 after %d reads", reads)
		}
	}
}

// TestRedisKilled: Redis dies in the middle of the suite; every request
// still succeeds from the database (FailOpen), and /healthz says degraded.
func TestRedisKilled(t *testing.T) { forEachDB(t, testRedisKilled) }

func testRedisKilled(t *testing.T, open opener) {
	redis := redistest.Start(t, redistest.Config{})
	a := newInstance(t, redis, open)
	a.product("/products/3")
	a.category("c03")

	if err := redis.Kill(); err != nil {
		t.Fatal(err)
	}

	q := a.app.Queries()
	if p, src := a.product("/products/4"); p.ID != 4 || src != "miss" {
		t.Fatalf("GET after kill: %+v X-Cache %q", p, src)
	}
	if a.app.Queries() == q {
		t.Fatal("GET after kill ran no query: not served from the database")
	}
	r := a.expect(http.StatusOK, "GET", "/products?ids=5,6,999999", nil)
	var many app.ProductsResponse
	r.decode(t, &many)
	if len(many.Products) != 2 || len(many.Missing) != 1 {
		t.Fatalf("GetMany after kill: %s", r.body)
	}
	a.expect(http.StatusNotFound, "GET", "/products/999998", nil)
	r = a.expect(http.StatusOK, "PUT", "/products/9", app.ProductInput{Name: "Offline edit", Category: "c09", PriceCents: 5})
	if r.header.Get("X-Cache-Invalidation") != "failed" {
		t.Fatalf("PUT with Redis down: X-Cache-Invalidation %q, want failed", r.header.Get("X-Cache-Invalidation"))
	}
	if p, _ := a.product("/products/9"); p.Name != "Offline edit" {
		t.Fatalf("GET after PUT with Redis down: %+v", p)
	}
	page, _ := a.category("c09")
	if got, ok := find(page, 9); !ok || got.Name != "Offline edit" {
		t.Fatalf("category page with Redis down: %+v", got)
	}
	a.expect(http.StatusNoContent, "DELETE", "/products/19", nil)
	r = a.expect(http.StatusOK, "GET", "/healthz", nil)
	var h app.Health
	r.decode(t, &h)
	if h.Status != "degraded" || h.Redis == "ok" || h.Database != "ok" {
		t.Fatalf("healthz with Redis down: %s", r.body)
	}
	a.expect(http.StatusServiceUnavailable, "POST", "/admin/invalidate?prefix=1", nil)
}

// TestGracefulShutdown: a request in flight when the context ends (as on
// SIGTERM) is answered before Serve returns, and Serve returns nil.
func TestGracefulShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- app.Serve(ctx, ln, h, time.Minute) }()
	got := make(chan string, 1)
	go func() {
		res, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			got <- err.Error()
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		got <- string(b)
	}()
	<-entered
	cancel()
	close(release)
	if body := <-got; body != "done" {
		t.Fatalf("request in flight at shutdown: %q", body)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// TestNoCache: with NoCache every read is a query of the database (X-Cache
// off), a PUT is read back at once, and /healthz says the cache is off.
func TestNoCache(t *testing.T) {
	forEachDB(t, func(t *testing.T, open opener) {
		a := startInstance(t, nil, open, true)
		q := a.app.Queries()
		for i := range 3 {
			p, src := a.product("/products/7")
			if p.ID != 7 || src != "off" || a.app.Queries() != q+int64(i)+1 {
				t.Fatalf("read %d: %+v X-Cache %q, %d queries", i+1, p, src, a.app.Queries()-q)
			}
		}
		r := a.expect(http.StatusOK, "GET", "/products?ids=1,2,999999", nil)
		var many app.ProductsResponse
		r.decode(t, &many)
		if len(many.Products) != 2 || len(many.Missing) != 1 || r.header.Get("X-Cache") != "off" {
			t.Fatalf("GetMany: %s X-Cache %q", r.body, r.header.Get("X-Cache"))
		}
		r = a.expect(http.StatusOK, "PUT", "/products/7", app.ProductInput{Name: "Off", Category: app.CategoryName(7), PriceCents: 3})
		var put app.Product
		r.decode(t, &put)
		if put.Version != 2 {
			t.Fatalf("PUT returned %+v, want version 2", put)
		}
		if p, _ := a.product("/products/7"); p.Version != 2 || p.Name != "Off" {
			t.Fatalf("after PUT: %+v", p)
		}
		if page, src := a.category(app.CategoryName(7)); src != "off" {
			t.Fatalf("category page X-Cache %q", src)
		} else if got, ok := find(page, 7); !ok || got.Name != "Off" {
			t.Fatalf("category page: %+v", got)
		}
		a.expect(http.StatusNotFound, "GET", "/products/999999", nil)
		a.expect(http.StatusConflict, "POST", "/admin/invalidate?prefix=1", nil)
		r = a.expect(http.StatusOK, "GET", "/healthz", nil)
		var h app.Health
		r.decode(t, &h)
		if h.Status != "ok" || h.Cache != "off" || h.Redis != "off" || h.Queries != a.app.Queries() {
			t.Fatalf("healthz: %s", r.body)
		}
	})
}

// TestConcurrentPuts: PUTs of one product from many goroutines each return
// a version of their own (the read and the write of a PUT are one atomic
// step on both databases: FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE on
// SQLite), and the last version counts them all.
func TestConcurrentPuts(t *testing.T) {
	forEachDB(t, func(t *testing.T, open opener) {
		redis := redistest.Start(t, redistest.Config{})
		a, b := newInstance(t, redis, open), newInstance(t, redis, open)
		const writers, each = 6, 5
		versions := make(chan int64, writers*each)
		errs := make(chan error, writers)
		var wg sync.WaitGroup
		for w := range writers {
			in := a
			if w%2 == 1 {
				in = b
			}
			wg.Go(func() {
				for i := range each {
					body := fmt.Sprintf(`{"name":"w%d-%d","category":"c01","price_cents":1}`, w, i)
					req, _ := http.NewRequest("PUT", in.srv.URL+"/products/1", strings.NewReader(body))
					res, err := in.srv.Client().Do(req)
					if err != nil {
						errs <- err
						return
					}
					var p app.Product
					err = json.NewDecoder(res.Body).Decode(&p)
					res.Body.Close()
					if err != nil || res.StatusCode != http.StatusOK {
						errs <- fmt.Errorf("PUT: status %d, %v", res.StatusCode, err)
						return
					}
					versions <- p.Version
				}
			})
		}
		wg.Wait()
		close(errs)
		close(versions)
		for err := range errs {
			t.Fatal(err)
		}
		seen := map[int64]bool{}
		for v := range versions {
			if seen[v] {
				t.Fatalf("two PUTs returned version %d", v)
			}
			seen[v] = true
		}
		if p, _ := a.product("/products/1"); p.Version != 1+writers*each || len(seen) != writers*each {
			t.Fatalf("after %d PUTs: %+v, %d distinct versions", writers*each, p, len(seen))
		}
	})
}
