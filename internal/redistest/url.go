package redistest

import (
	"fmt"
	"net"
	"time"

	"github.com/redis/rueidis"
)

// ForURL returns the connection options of url (a redis:// or rediss:// URL)
// when something answers at its address; otherwise it launches a private
// redis-server and returns its options. stop stops what ForURL started
// (nothing, for url). say, when not nil, is told which it was. It is for the
// examples, which run against a Redis of the user's or, on a fresh machine,
// one of their own.
func ForURL(url string, say func(string)) (opt rueidis.ClientOption, stop func(), err error) {
	if say == nil {
		say = func(string) {}
	}
	opt, err = rueidis.ParseURL(url)
	if err != nil {
		return opt, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	if conn, err := net.DialTimeout("tcp", opt.InitAddress[0], time.Second); err == nil {
		_ = conn.Close()
		say("using Redis at " + url)
		return opt, func() {}, nil
	}
	srv, err := Launch(Config{})
	if err != nil {
		return opt, nil, fmt.Errorf("nothing answers at %s and no private redis-server could start: %w", url, err)
	}
	say(fmt.Sprintf("nothing answers at %s: started a private redis-server on %s for this run", url, srv.Addr()))
	return srv.ClientOption(), func() { _ = srv.Close() }, nil
}
