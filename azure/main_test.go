package azure_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Clients, token requests and the rotation harness all start goroutines: none
// may outlive the tests, except two of rueidis' cluster client that
// client.Close does not stop and that end by themselves within seconds: the
// delayed topology refresh (it sleeps up to a second first) and the closing of
// connections a refresh dropped (5 s later).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
	)
}
