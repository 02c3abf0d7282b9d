package pgtest

import (
	"errors"
	"testing"
)

// TestNoBinaries: with no initdb on PATH nor under the packages' directory,
// Launch fails with ErrNoBinaries (which says how to install them) rather
// than trying anything else, such as a PostgreSQL already running.
func TestNoBinaries(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	saved := libGlob
	libGlob = t.TempDir() + "/*/bin"
	t.Cleanup(func() { libGlob = saved })
	s, err := Launch()
	if err == nil {
		s.Close()
		t.Fatal("Launch succeeded without binaries")
	}
	if !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("Launch: %v, want ErrNoBinaries", err)
	}
}
