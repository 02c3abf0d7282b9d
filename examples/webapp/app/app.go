// Package app is the example catalogue service: products in a SQL database
// (SQLite through modernc.org/sqlite, or PostgreSQL through pgx), read
// through aside caches on Redis, served over net/http. main wires it; tests
// drive it through httptest.
package app

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/loader"
	"github.com/aside-go/aside/ttlpolicy"
)

// Product is a row of the products table, and what the product cache holds.
type Product struct {
	ID         int64  `json:"id"`
	Name       string `json:"name"`
	Category   string `json:"category"`
	PriceCents int64  `json:"price_cents"`
	Version    int64  `json:"version"`
}

// CategoryPage is what GET /categories/{name} serves, cached under the
// category's name and loaded by one query of its products.
type CategoryPage struct {
	Category string    `json:"category"`
	Products []Product `json:"products"`
}

// Namespaces of the two caches; every instance sharing a Redis uses the same.
const (
	ProductNamespace  = "webapp-product"
	CategoryNamespace = "webapp-category"
)

// MaxIDs bounds the ids of one GET /products?ids= request.
const MaxIDs = 100

// Config is what New needs.
type Config struct {
	// DB is the catalogue, from OpenSQLite or OpenPostgres.
	DB *DB
	// Client is aside's Redis client. It may be nil when NoCache is set.
	Client *cache.Client
	// NoCache runs the service on the database alone ("aside off", for
	// comparison): every read is a query, X-Cache says "off", writes
	// invalidate nothing and /admin/invalidate answers 409.
	NoCache bool
	// Recorder, when set, receives the caches' metrics (asideotel).
	Recorder cache.Recorder
	// Metrics, when set, serves /metrics.
	Metrics http.Handler
	Logger  *slog.Logger
}

// App is the service: its caches, its database and its routes.
type App struct {
	db         *DB
	noCache    bool
	client     *cache.Client
	products   *cache.Cache[int64, Product]
	categories *cache.Cache[string, CategoryPage]
	log        *slog.Logger
	mux        *http.ServeMux
	queries    atomic.Int64
	// categoryQueried, when set (by tests), is called after a category
	// page's query, before the page is returned to the cache.
	categoryQueried atomic.Pointer[func(name string)]
}

// New builds the service on cfg.
func New(cfg Config) (*App, error) {
	if cfg.DB == nil || (cfg.Client == nil && !cfg.NoCache) {
		return nil, errors.New("app: Config.DB and Config.Client are required (Client may be nil only with NoCache)")
	}
	a := &App{db: cfg.DB, noCache: cfg.NoCache, client: cfg.Client, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.Default()
	}
	a.mux = a.routes(cfg.Metrics)
	if cfg.NoCache {
		return a, nil
	}
	var err error
	a.products, err = cache.New(cfg.Client, cache.Options[int64, Product]{
		Namespace:   ProductNamespace,
		TTL:         ttlpolicy.Minutes(10),
		Loader:      a.loadProduct,
		BatchLoader: a.loadProducts,
		Recorder:    cfg.Recorder,
	})
	if err != nil {
		return nil, err
	}
	// A page is loaded under its key's lease, like a product: a change
	// committed after the page's query invalidates the key, lease and all,
	// and the stale page is never written.
	a.categories, err = cache.New(cfg.Client, cache.Options[string, CategoryPage]{
		Namespace: CategoryNamespace,
		TTL:       ttlpolicy.Minutes(1),
		Loader:    a.loadCategory,
		Recorder:  cfg.Recorder,
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (a *App) routes(metrics http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /products/{id}", a.getProduct)
	mux.HandleFunc("GET /products", a.getProducts)
	mux.HandleFunc("PUT /products/{id}", a.putProduct)
	mux.HandleFunc("DELETE /products/{id}", a.deleteProduct)
	mux.HandleFunc("GET /categories/{name}", a.getCategory)
	mux.HandleFunc("POST /admin/invalidate", a.invalidate)
	mux.HandleFunc("GET /healthz", a.healthz)
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	return mux
}

// ServeHTTP implements http.Handler.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// Queries returns how many database queries the service has run.
func (a *App) Queries() int64 { return a.queries.Load() }

// Products and Categories return the caches, for tests and /healthz (nil
// with NoCache).
func (a *App) Products() *cache.Cache[int64, Product]         { return a.products }
func (a *App) Categories() *cache.Cache[string, CategoryPage] { return a.categories }

// --- loaders -------------------------------------------------------------

func (a *App) loadProduct(ctx context.Context, id int64) (Product, error) {
	a.queries.Add(1)
	var p Product
	err := a.db.QueryRowContext(ctx, `SELECT id, name, category, price_cents, version FROM products WHERE id = $1`, id).
		Scan(&p.ID, &p.Name, &p.Category, &p.PriceCents, &p.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return Product{}, loader.ErrNotFound
	}
	return p, err
}

// loadProducts is GetMany's batch loader: one query for all the misses.
func (a *App) loadProducts(ctx context.Context, ids []int64) (map[int64]Product, error) {
	a.queries.Add(1)
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	q := `SELECT id, name, category, price_cents, version FROM products WHERE id IN (` +
		placeholders(1, len(ids)) + `)`
	rows, err := a.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[int64]Product, len(ids))
	for rows.Next() {
		var p Product
		if err := rows.Scan(&p.ID, &p.Name, &p.Category, &p.PriceCents, &p.Version); err != nil {
			return nil, err
		}
		out[p.ID] = p
	}
	return out, rows.Err()
}

func (a *App) loadCategory(ctx context.Context, name string) (CategoryPage, error) {
	a.queries.Add(1)
	rows, err := a.db.QueryContext(ctx, `SELECT id, name, category, price_cents, version FROM products WHERE category = $1 ORDER BY id`, name)
	if err != nil {
		return CategoryPage{}, err
	}
	defer rows.Close()
	page := CategoryPage{Category: name, Products: []Product{}}
	for rows.Next() {
		var p Product
		if err := rows.Scan(&p.ID, &p.Name, &p.Category, &p.PriceCents, &p.Version); err != nil {
			return CategoryPage{}, err
		}
		page.Products = append(page.Products, p)
	}
	if err := rows.Err(); err != nil {
		return CategoryPage{}, err
	}
	if f := a.categoryQueried.Load(); f != nil {
		(*f)(name)
	}
	if len(page.Products) == 0 {
		return CategoryPage{}, loader.ErrNotFound
	}
	// The page is tagged with the products it lists: a change of one of
	// them reaches it by tag (see invalidateProduct). Outside a cache's
	// load (NoCache) there is nothing to tag.
	if !a.noCache {
		tags := make([]string, len(page.Products))
		for i, p := range page.Products {
			tags[i] = ProductTag(p.ID)
		}
		if err := cache.Adapt(ctx, cache.WithTags(tags...)); err != nil {
			return CategoryPage{}, err
		}
	}
	return page, nil
}

// ProductTag is the tag of the category pages that list product id.
func ProductTag(id int64) string { return "product:" + strconv.FormatInt(id, 10) }

// --- handlers ------------------------------------------------------------

// xCache is the X-Cache header of a read's source.
func xCache(s cache.Source) string {
	switch s {
	case cache.SourceLocal:
		return "local"
	case cache.SourceRedis:
		return "redis"
	default:
		return "miss"
	}
}

// xCacheOff is the X-Cache header of every read with NoCache.
const xCacheOff = "off"

func (a *App) getProduct(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	var (
		p      Product
		source string
	)
	if a.noCache {
		p, err = a.loadProduct(r.Context(), id)
		source = xCacheOff
	} else {
		var src cache.Source
		p, err = a.products.Get(r.Context(), id, cache.SourceOf(&src))
		source = xCache(src)
	}
	if err != nil {
		a.readError(w, err, fmt.Sprintf("product %d not found", id))
		return
	}
	w.Header().Set("X-Cache", source)
	writeJSON(w, http.StatusOK, p)
}

// ProductsResponse is what GET /products?ids= serves: the products found, in
// the order asked, and the ids not found.
type ProductsResponse struct {
	Products []Product `json:"products"`
	Missing  []int64   `json:"missing"`
}

func (a *App) getProducts(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query().Get("ids")
	if raw == "" {
		httpError(w, http.StatusBadRequest, "ids: required, a comma-separated list of product ids")
		return
	}
	parts := strings.Split(raw, ",")
	if len(parts) > MaxIDs {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("ids: at most %d ids", MaxIDs))
		return
	}
	ids := make([]int64, 0, len(parts))
	seen := make(map[int64]bool, len(parts))
	for _, s := range parts {
		id, err := parseID(strings.TrimSpace(s))
		if err != nil {
			httpError(w, http.StatusBadRequest, "ids: "+err.Error())
			return
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	var (
		got    map[int64]Product
		err    error
		source string
	)
	if a.noCache {
		got, err = a.loadProducts(r.Context(), ids)
		source = xCacheOff
	} else {
		var src cache.Source
		got, err = a.products.GetMany(r.Context(), ids, cache.SourceOf(&src))
		source = xCache(src)
	}
	if err != nil {
		a.readError(w, err, "")
		return
	}
	resp := ProductsResponse{Products: []Product{}, Missing: []int64{}}
	for _, id := range ids {
		if p, ok := got[id]; ok {
			resp.Products = append(resp.Products, p)
		} else {
			resp.Missing = append(resp.Missing, id)
		}
	}
	w.Header().Set("X-Cache", source)
	writeJSON(w, http.StatusOK, resp)
}

// ProductInput is the body of PUT /products/{id}.
type ProductInput struct {
	Name       string `json:"name"`
	Category   string `json:"category"`
	PriceCents int64  `json:"price_cents"`
}

func (in ProductInput) validate() error {
	switch {
	case strings.TrimSpace(in.Name) == "" || len(in.Name) > 200:
		return errors.New("name: required, at most 200 bytes")
	case !categoryRE.MatchString(in.Category):
		return errors.New("category: required, 1 to 64 of a-z, 0-9, - and _")
	case in.PriceCents < 0:
		return errors.New("price_cents: must not be negative")
	}
	return nil
}

func (a *App) putProduct(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	var in ProductInput
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		httpError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if err := in.validate(); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx := r.Context()
	var old, p Product
	err = a.inTx(ctx, func(tx *sql.Tx) error {
		a.queries.Add(1)
		err := tx.QueryRowContext(ctx, `SELECT category, version FROM products WHERE id = $1`+a.db.Dialect.lockRow, id).
			Scan(&old.Category, &old.Version)
		if errors.Is(err, sql.ErrNoRows) {
			return loader.ErrNotFound
		} else if err != nil {
			return err
		}
		p = Product{ID: id, Name: in.Name, Category: in.Category, PriceCents: in.PriceCents, Version: old.Version + 1}
		a.queries.Add(1)
		_, err = tx.ExecContext(ctx, `UPDATE products SET name = $1, category = $2, price_cents = $3, version = $4 WHERE id = $5`,
			p.Name, p.Category, p.PriceCents, p.Version, id)
		return err
	})
	if errors.Is(err, loader.ErrNotFound) {
		httpError(w, http.StatusNotFound, fmt.Sprintf("product %d not found", id))
		return
	} else if err != nil {
		a.log.Error("update product", "id", id, "err", err)
		httpError(w, http.StatusInternalServerError, "database error")
		return
	}
	a.invalidateProduct(w, ctx, id, old.Category, p.Category)
	writeJSON(w, http.StatusOK, p)
}

func (a *App) deleteProduct(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx := r.Context()
	var category string
	err = a.inTx(ctx, func(tx *sql.Tx) error {
		a.queries.Add(1)
		err := tx.QueryRowContext(ctx, `SELECT category FROM products WHERE id = $1`+a.db.Dialect.lockRow, id).Scan(&category)
		if errors.Is(err, sql.ErrNoRows) {
			return loader.ErrNotFound
		} else if err != nil {
			return err
		}
		a.queries.Add(1)
		_, err = tx.ExecContext(ctx, `DELETE FROM products WHERE id = $1`, id)
		return err
	})
	if errors.Is(err, loader.ErrNotFound) {
		httpError(w, http.StatusNotFound, fmt.Sprintf("product %d not found", id))
		return
	} else if err != nil {
		a.log.Error("delete product", "id", id, "err", err)
		httpError(w, http.StatusInternalServerError, "database error")
		return
	}
	a.invalidateProduct(w, ctx, id, category)
	w.WriteHeader(http.StatusNoContent)
}

// invalidateProduct removes, after the transaction committed, the product's
// key, the pages that list it (tagged with it by their loader) and the pages
// of its categories (before and after the change: the new one does not list
// it yet, and a page being loaded is not tagged yet), in one call: once it returns, no instance's next read returns the old version
// from Redis, and every instance's local copy is dropped by Redis's push.
// When Redis is down the change is committed anyway; the response says the
// invalidation failed (copies then live until their TTL, or until the
// clients reconnect and drop what they held).
func (a *App) invalidateProduct(w http.ResponseWriter, ctx context.Context, id int64, categories ...string) {
	if a.noCache {
		return
	}
	if _, err := a.client.Invalidate(context.WithoutCancel(ctx),
		cache.Keys(a.products, id), cache.Keys(a.categories, categories...), cache.Tags(a.categories, ProductTag(id))); err != nil {
		a.log.Warn("invalidate after write", "id", id, "err", err)
		w.Header().Set("X-Cache-Invalidation", "failed")
	}
}

func (a *App) getCategory(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !categoryRE.MatchString(name) {
		httpError(w, http.StatusBadRequest, "category: 1 to 64 of a-z, 0-9, - and _")
		return
	}
	ctx := r.Context()
	if a.noCache {
		page, err := a.loadCategory(ctx, name)
		if err != nil {
			a.readError(w, err, fmt.Sprintf("category %q not found", name))
			return
		}
		w.Header().Set("X-Cache", xCacheOff)
		writeJSON(w, http.StatusOK, page)
		return
	}
	var src cache.Source
	page, err := a.categories.Get(ctx, name, cache.SourceOf(&src))
	if err != nil {
		a.readError(w, err, fmt.Sprintf("category %q not found", name))
		return
	}
	w.Header().Set("X-Cache", xCache(src))
	writeJSON(w, http.StatusOK, page)
}

// InvalidateResponse is what POST /admin/invalidate serves.
type InvalidateResponse struct {
	Cache   string `json:"cache"`
	Prefix  string `json:"prefix"`
	Removed int64  `json:"removed"`
}

func (a *App) invalidate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	prefix := q.Get("prefix")
	if prefix == "" {
		httpError(w, http.StatusBadRequest, "prefix: required (taken literally: * ? [ and \\ match themselves)")
		return
	}
	if a.noCache {
		httpError(w, http.StatusConflict, "the cache is off (NoCache): nothing to invalidate")
		return
	}
	which := q.Get("cache")
	if which == "" {
		which = "products"
	}
	var (
		n   int64
		err error
	)
	switch which {
	case "products":
		n, err = a.products.InvalidatePrefix(r.Context(), prefix)
	case "categories":
		n, err = a.categories.InvalidatePrefix(r.Context(), prefix)
	default:
		httpError(w, http.StatusBadRequest, "cache: products or categories")
		return
	}
	if err != nil {
		a.log.Warn("invalidate prefix", "prefix", prefix, "err", err)
		httpError(w, http.StatusServiceUnavailable, "invalidation failed: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, InvalidateResponse{Cache: which, Prefix: prefix, Removed: n})
}

// Health is what /healthz serves.
type Health struct {
	Status   string `json:"status"` // ok, degraded (Redis down: served from the database) or down
	Redis    string `json:"redis"`  // ok, unreachable: …, not connected, or off (NoCache)
	Tracking bool   `json:"tracking"`
	Database string `json:"database"`
	// Dialect is the database's: sqlite or postgres.
	Dialect string `json:"dialect"`
	// Cache is on, or off with NoCache.
	Cache string `json:"cache"`
	// Queries is App.Queries: the database queries run since start (the
	// load tool reads it before and after a run).
	Queries    int64       `json:"queries"`
	Products   cache.Stats `json:"products"`
	Categories cache.Stats `json:"categories"`
}

func (a *App) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	h := Health{Status: "ok", Redis: "ok", Database: "ok", Dialect: a.db.Dialect.Name, Cache: "on"}
	switch {
	case a.noCache:
		h.Redis, h.Cache = "off", "off"
	case !a.client.Connected():
		h.Redis = "not connected"
	default:
		if err := a.client.Ping(ctx); err != nil {
			h.Redis = "unreachable: " + err.Error()
		}
	}
	if !a.noCache {
		h.Tracking, h.Products, h.Categories = a.client.Tracking(), a.products.Stats(), a.categories.Stats()
	}
	if err := a.db.PingContext(ctx); err != nil {
		h.Database = "unreachable: " + err.Error()
	}
	h.Queries = a.Queries()
	code := http.StatusOK
	switch {
	case h.Database != "ok":
		h.Status, code = "down", http.StatusServiceUnavailable
	case h.Redis != "ok" && !a.noCache:
		h.Status = "degraded"
	}
	writeJSON(w, code, h)
}

// --- helpers -------------------------------------------------------------

var categoryRE = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("id %q: must be a positive integer", s)
	}
	return id, nil
}

func (a *App) inTx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// readError answers a failed read: 404 for not found, 500 otherwise (Redis
// being down is not an error here: FailOpen reads from the database).
func (a *App) readError(w http.ResponseWriter, err error, notFound string) {
	if errors.Is(err, cache.ErrNotFound) {
		httpError(w, http.StatusNotFound, notFound)
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	a.log.Error("read", "err", err)
	httpError(w, http.StatusInternalServerError, "internal error")
}

type errorBody struct {
	Error string `json:"error"`
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
