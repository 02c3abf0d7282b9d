package redistest_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/internal/redistest"
)

// TestSentinelFailover starts a primary, a replica and three Sentinels,
// writes through a rueidis client that follows the Sentinels, fails over and
// reads the value back from the new master.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g := redistest.StartSentinel(t, redistest.SentinelConfig{})
	first := g.Servers()[0]
	m, err := g.Master(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m != first {
		t.Fatalf("master %s, want the first server %s", m.Addr(), first.Addr())
	}
	client, err := rueidis.NewClient(g.ClientOption())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.Do(ctx, client.B().Set().Key("k").Value("v").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	// The replica has the write before the failover, so none is lost.
	if _, err := first.Do(ctx, "WAIT", "1", "5000"); err != nil {
		t.Fatal(err)
	}
	next, err := g.Failover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if next == first {
		t.Fatal("the master did not change")
	}
	if got, err := next.Do(ctx, "GET", "k"); err != nil || got != "v" {
		t.Fatalf("GET k on the new master = %q, %v", got, err)
	}
	// The client follows the Sentinels' +switch-master: a bounded number of
	// writes until one lands on the new master.
	for i := 0; ; i++ {
		if err := client.Do(ctx, client.B().Set().Key("k").Value("w").Build()).Error(); err == nil {
			if got, _ := next.Do(ctx, "GET", "k"); got == "w" {
				break
			}
		}
		if i == 10_000 {
			t.Fatal("the client never wrote to the new master")
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
