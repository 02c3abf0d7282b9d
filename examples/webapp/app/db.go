package app

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver (PostgreSQL)
	_ "modernc.org/sqlite"             // the "sqlite" database/sql driver, pure Go
)

// SeedProducts is how many products a new database is seeded with.
const SeedProducts = 10000

// Categories is how many categories the seeded products are spread over.
const Categories = 100

// CategoryName is the name of the i-th seeded category.
func CategoryName(i int) string { return fmt.Sprintf("c%02d", i%Categories) }

// DB is the catalogue database: a *sql.DB and the dialect of SQL it speaks.
//
// The service's queries are one text for both databases: they number their
// parameters $1, $2, … which PostgreSQL requires and SQLite reads as the
// same positions (modernc.org/sqlite binds $N to the N-th argument). What
// differs is in [Dialect].
type DB struct {
	*sql.DB
	Dialect Dialect
}

// Dialect is what differs between the two databases.
type Dialect struct {
	// Name is "sqlite" or "postgres".
	Name string
	// lockRow ends the SELECT that a write transaction reads the row with
	// before updating it. PostgreSQL at READ COMMITTED needs FOR UPDATE, or
	// two concurrent PUTs of one product both read version n and both write
	// n+1. SQLite has no FOR UPDATE and needs none: a transaction begun with
	// BEGIN IMMEDIATE (_txlock=immediate) holds the database's write lock.
	lockRow string
	// schema creates the tables when missing.
	schema []string
	// seedBatch is how many rows one INSERT of the seed writes (see seed).
	seedBatch int
}

// SQLite and Postgres are the two dialects.
var (
	SQLite = Dialect{
		Name:      "sqlite",
		seedBatch: 1,
		schema:    schema("INTEGER"),
	}
	Postgres = Dialect{
		Name:      "postgres",
		lockRow:   " FOR UPDATE",
		seedBatch: 1000,
		schema:    schema("BIGINT"),
	}
)

// schema is the catalogue's tables, their integer columns of type integer
// (SQLite's INTEGER is 64 bits; PostgreSQL's is 32, and BIGINT 64).
func schema(integer string) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS products (
			id          ` + integer + ` PRIMARY KEY,
			name        TEXT NOT NULL,
			category    TEXT NOT NULL,
			price_cents ` + integer + ` NOT NULL,
			version     ` + integer + ` NOT NULL DEFAULT 1
		)`,
		`CREATE INDEX IF NOT EXISTS products_category ON products(category, id)`,
		`CREATE TABLE IF NOT EXISTS seeded (done INTEGER NOT NULL)`,
	}
}

// OpenSQLite opens (creating dir and the file when missing) the catalogue
// database in dir, and seeds it with SeedProducts products on first start.
// WAL mode and a busy timeout let several processes share the file.
func OpenSQLite(ctx context.Context, dir string) (*DB, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	dsn := "file:" + filepath.Join(dir, "catalogue.db") +
		"?_txlock=immediate&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	return open(ctx, "sqlite", dsn, SQLite)
}

// OpenPostgres connects to the PostgreSQL database at url (a postgres:// URL
// or a key=value connection string, as DATABASE_URL holds) through pgx, and
// creates and seeds the tables on first start. Several instances may start
// at once: the migration runs under a transaction-scoped advisory lock, so
// one of them creates and seeds, and the others then find it done.
func OpenPostgres(ctx context.Context, url string) (*DB, error) {
	return open(ctx, "pgx", url, Postgres)
}

// migrateLock is the key of the advisory lock OpenPostgres migrates under:
// any number shared by every instance, here "aside" in ASCII.
const migrateLock = 0x6173696465

// maxConns bounds an instance's connections, open and idle: well below
// PostgreSQL's default max_connections (100) with two instances.
const maxConns = 32

func open(ctx context.Context, driver, dsn string, d Dialect) (*DB, error) {
	sqlDB, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, err
	}
	// database/sql keeps 2 idle connections by default: under concurrent
	// requests the others are closed and reopened, and a new PostgreSQL
	// connection is a new server process (milliseconds each).
	sqlDB.SetMaxOpenConns(maxConns)
	sqlDB.SetMaxIdleConns(maxConns)
	db := &DB{DB: sqlDB, Dialect: d}
	if err := db.migrate(ctx); err != nil {
		sqlDB.Close()
		return nil, err
	}
	return db, nil
}

// migrate creates the tables and seeds them, once, in one transaction: a
// failed seed leaves nothing behind, and the seeded row is written by the
// transaction that wrote the products.
func (db *DB) migrate(ctx context.Context) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck
	if db.Dialect.Name == Postgres.Name {
		// CREATE TABLE IF NOT EXISTS is not safe against a concurrent
		// creator (both may pass the check, one then fails on the catalog's
		// unique index); the lock makes the second instance wait for the
		// first's commit, then see the tables and the seeded row.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
	}
	for _, stmt := range db.Dialect.schema {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM seeded`).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return tx.Commit()
	}
	if err := seed(ctx, tx, db.Dialect.seedBatch); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO seeded (done) VALUES (1)`); err != nil {
		return err
	}
	return tx.Commit()
}

// seed writes the SeedProducts rows. On PostgreSQL, rows go seedBatch to
// an INSERT (4 parameters a row, far below its limit of 65 535): ten round
// trips instead of ten thousand. SQLite runs in process, with no round trip
// to save, and binds a statement of many parameters slowly (13 s for the
// seed under the race detector, against 0.7 s one row at a time), so there
// one prepared statement is run per row.
func seed(ctx context.Context, tx *sql.Tx, batch int) error {
	row := func(i int) []any {
		return []any{int64(i), fmt.Sprintf("Product %d", i), CategoryName(i), int64(100 + (i*37)%10000)}
	}
	if batch <= 1 {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO products (id, name, category, price_cents) VALUES ($1, $2, $3, $4)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := 1; i <= SeedProducts; i++ {
			if _, err := stmt.ExecContext(ctx, row(i)...); err != nil {
				return fmt.Errorf("seed product %d: %w", i, err)
			}
		}
		return nil
	}
	for first := 1; first <= SeedProducts; first += batch {
		last := min(first+batch-1, SeedProducts)
		var q strings.Builder
		q.WriteString(`INSERT INTO products (id, name, category, price_cents) VALUES `)
		args := make([]any, 0, 4*(last-first+1))
		for i := first; i <= last; i++ {
			if i > first {
				q.WriteByte(',')
			}
			q.WriteString("(" + placeholders(len(args)+1, 4) + ")")
			args = append(args, row(i)...)
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("seed products %d to %d: %w", first, last, err)
		}
	}
	return nil
}

// placeholders returns "$from, $from+1, …" for n parameters.
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", from+i)
	}
	return b.String()
}
