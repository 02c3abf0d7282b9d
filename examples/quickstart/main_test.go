package main

import (
	"testing"

	"github.com/aside-go/aside/internal/redistest"
)

// TestQuickstart runs every step of the quickstart against a private
// redis-server: a step whose result differs from what it expects fails it.
func TestQuickstart(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	t.Setenv("REDIS_URL", "redis://"+srv.Addr())
	if err := run(); err != nil {
		t.Fatal(err)
	}
}
