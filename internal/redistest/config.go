package redistest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// ErrNotInstalled is wrapped by the error returned when the redis-server binary
// cannot be found. Its message tells how to install it.
var ErrNotInstalled = errors.New("redis-server not found on PATH (install it: `sudo apt-get install redis-server` on Debian/Ubuntu, `brew install redis` on macOS; or set REDIS_SERVER to its path)")

// ErrClosed is returned by the methods of a [Server] that has been closed.
var ErrClosed = errors.New("redistest: server closed")

// User is an ACL user created when the server starts (and again after each
// [Server.Restart], because ACL users are not persisted).
type User struct {
	// Name is the user name.
	Name string
	// Password is the user's password; empty means "nopass".
	Password string
	// Rules are ACL rules applied after "on" and the password, for example
	// "~*", "&*", "+@all", "-client|tracking".
	Rules []string
}

// Config describes one redis-server. The zero value is a plain standalone server
// without password.
type Config struct {
	// TLS serves TLS only (--port 0 --tls-port P) with a CA and a server
	// certificate generated at run time. Clients get the CA from
	// [Server.TLSConfig] or [Server.CACertPEM].
	TLS bool
	// TLSHosts are extra DNS names put in the server certificate. It always
	// holds localhost, 127.0.0.1 and ::1.
	TLSHosts []string
	// Users are ACL users created at start. The default user is left as it is
	// unless Password is set or a User named "default" is given.
	Users []User
	// Password, when set, is required from the default user (requirepass).
	Password string
	// Args are extra redis-server arguments, appended last so that they
	// override the launcher's own settings, e.g. {"--maxmemory", "10mb"}.
	Args []string
	// Binary is the redis-server executable. Empty means the REDIS_SERVER
	// environment variable, then redis-server on PATH.
	Binary string
}

// binary resolves the redis-server executable, wrapping ErrNotInstalled when it
// does not exist, so callers can print the install hint instead of an exec error.
func (c Config) binary() (string, error) {
	name := c.Binary
	if name == "" {
		name = os.Getenv("REDIS_SERVER")
	}
	if name == "" {
		path, err := exec.LookPath("redis-server")
		if err != nil {
			return "", fmt.Errorf("redistest: %w", ErrNotInstalled)
		}
		return path, nil
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("redistest: %q: %w", name, ErrNotInstalled)
	}
	return path, nil
}

// CacheUserRules are the ACL rules of the least-privileged user of aside's
// caches of the given namespaces, as the README gives them: their keys and
// tag indexes, no channels, and only the commands aside sends (those its
// scripts run included) — the connection commands without the
// administrative ones such as CLIENT KILL, and the two a cluster client
// reads the topology with.
func CacheUserRules(namespaces ...string) []string {
	var rules []string
	for _, ns := range namespaces {
		rules = append(rules, "~"+ns+":*", "~"+ns+"#tag:*", "~"+ns+"#lease{*", "~"+ns+"#clear")
	}
	return append(rules, strings.Fields(cacheCommands)...)
}

const cacheCommands = "resetchannels -@all +@connection -@admin -@dangerous " +
	"+evalsha +eval +multi +exec +get +set +incr +pttl +del +unlink +exists +pexpire +pexpireat +persist " +
	"+sadd +sscan +srem +srandmember +scan +role +cluster|slots +cluster|shards"
