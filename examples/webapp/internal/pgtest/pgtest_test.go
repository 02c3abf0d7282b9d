package pgtest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/aside-go/aside/examples/webapp/internal/pgtest"
)

// TestServer: a private server answers on its own port (never 5432), its
// databases are separate, and Close stops it.
func TestServer(t *testing.T) {
	s, err := pgtest.Launch()
	if err != nil {
		t.Fatal(err)
	}
	if s.Port() == 5432 {
		t.Fatal("pgtest chose port 5432, the machine's own PostgreSQL")
	}
	ctx := context.Background()
	a, b := s.NewDatabase(t), s.NewDatabase(t)
	if a == b {
		t.Fatalf("two databases with one URL: %s", a)
	}
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Exec(ctx, `CREATE TABLE only_in_a (x int)`); err != nil {
		t.Fatal(err)
	}
	var user string
	if err := ca.QueryRow(ctx, `SELECT current_user`).Scan(&user); err != nil || user != "postgres" {
		t.Fatalf("current_user %q, %v", user, err)
	}
	ca.Close(ctx)
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := cb.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("database b sees a's table: %d, %v", n, err)
	}
	cb.Close(ctx)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, a); err == nil {
		t.Fatal("connected after Close")
	}
}

// TestInstallHint: the error for missing binaries says how to install them.
func TestInstallHint(t *testing.T) {
	for _, want := range []string{"apt-get install", "scripts/ensure-postgres"} {
		if !strings.Contains(pgtest.ErrNoBinaries.Error(), want) {
			t.Fatalf("ErrNoBinaries %q does not mention %q", pgtest.ErrNoBinaries, want)
		}
	}
}
