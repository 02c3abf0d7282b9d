package flight_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every load runs on a goroutine of its own: none may outlive the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
