package app

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

// SeedProducts is how many products OpenSQLite seeds an empty database with.
const SeedProducts = 10000

// Categories is how many categories the seeded products are spread over.
const Categories = 100

// CategoryName is the name of the i-th seeded category.
func CategoryName(i int) string { return fmt.Sprintf("c%02d", i%Categories) }

// OpenSQLite opens (creating dir and the file when missing) the catalogue
// database in dir, and seeds it with SeedProducts products on first start.
// WAL mode and a busy timeout let several processes share the file.
func OpenSQLite(ctx context.Context, dir string) (*sql.DB, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	dsn := "file:" + filepath.Join(dir, "catalogue.db") +
		"?_txlock=immediate&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS products (
		id          INTEGER PRIMARY KEY,
		name        TEXT    NOT NULL,
		category    TEXT    NOT NULL,
		price_cents INTEGER NOT NULL,
		version     INTEGER NOT NULL DEFAULT 1
	)`); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS products_category ON products(category, id)`); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS seeded (done INTEGER NOT NULL)`); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM seeded`).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return tx.Commit()
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO products (id, name, category, price_cents) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i := 1; i <= SeedProducts; i++ {
		if _, err := stmt.ExecContext(ctx, i, fmt.Sprintf("Product %d", i), CategoryName(i), 100+(i*37)%10000); err != nil {
			return fmt.Errorf("seed product %d: %w", i, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO seeded (done) VALUES (1)`); err != nil {
		return err
	}
	return tx.Commit()
}
