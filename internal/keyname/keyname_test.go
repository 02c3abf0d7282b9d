package keyname_test

import (
	"testing"

	"github.com/aside-go/aside/internal/keyname"
)

// TestLeaseKeyRoundTrips: a lease key is in its value key's slot, names its
// value key back, and is never a value key of any namespace.
func TestLeaseKeyRoundTrips(t *testing.T) {
	t.Parallel()
	for _, part := range []string{"42", "{42}:profile", "a}b", "a{b", "{}x", "}{", "", "x{y}z{w}", "é{ü}"} {
		key := "user:" + part
		lk := keyname.Lease("user", key)
		if keyname.Slot(lk) != keyname.Slot(key) {
			t.Errorf("%q: lease key %q is in slot %d, the key in %d", key, lk, keyname.Slot(lk), keyname.Slot(key))
		}
		vk, ns, ok := keyname.ValueOf(lk)
		if !ok || vk != key || ns != "user" {
			t.Errorf("%q: ValueOf(%q) = %q, %q, %v", key, lk, vk, ns, ok)
		}
	}
	for _, notLease := range []string{"user:42", "user#tag:t", "user:x#lease{user:x}", "#lease{a}"} {
		if _, _, ok := keyname.ValueOf(notLease); ok {
			t.Errorf("ValueOf(%q) took it for a lease key", notLease)
		}
	}
	if got := keyname.Tag("user", "t:1"); got != "user#tag:t:1" {
		t.Errorf("Tag = %q", got)
	}
}

func TestClearKey(t *testing.T) {
	t.Parallel()
	if got := keyname.Clear("app"); got != "app#clear" {
		t.Fatalf("Clear(app) = %q", got)
	}
	for key, want := range map[string]string{
		"app#clear":          "app",
		"my-app.v2#clear":    "my-app.v2",
		"#clear":             "",
		"app:x#clear":        "", // a value key of namespace app
		"app#lease{x}#clear": "",
		"app#clearx":         "",
	} {
		ns, ok := keyname.NamespaceCleared(key)
		if ok != (want != "") || ns != want {
			t.Errorf("NamespaceCleared(%q) = %q, %v; want %q", key, ns, ok, want)
		}
	}
}
