package azure_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Clients, token requests and the rotation harness all start goroutines: none
// may outlive the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
