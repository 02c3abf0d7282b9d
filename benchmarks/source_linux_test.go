package benchmarks

import (
	"path/filepath"
	"testing"
	"time"
)

// TestSharedSource checks that two mappings of a shared source see each
// other's updates and completions, and agree on the clock.
func TestSharedSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "source")
	a, err := CreateSharedSource(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenSharedSource(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Len() != 10 {
		t.Fatalf("Len %d, want 10", b.Len())
	}
	v := a.Update(3)
	at := a.Now()
	a.Complete(3, v, at)
	a.Complete(3, v-1, at+time.Second) // an older update completing late is ignored
	if got := b.Load(3); got.Version != v {
		t.Fatalf("the other mapping loads version %d, want %d", got.Version, v)
	}
	c := b.Completed(3)
	if c.Version != v || c.At != at.Truncate(time.Microsecond) {
		t.Fatalf("the other mapping sees %+v, want version %d at %v", c, v, at)
	}
	if d := b.Now() - a.Now(); d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("the clocks of the two mappings differ by %v", d)
	}
	if _, err := OpenSharedSource(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("opened a missing source")
	}
}
