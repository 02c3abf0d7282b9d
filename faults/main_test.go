package faults_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestMain prints the table of results after the faults ran, and writes it
// to FAULTS_REPORT when set.
func TestMain(m *testing.M) {
	// toxiproxy logs through zerolog's global logger at trace level.
	zerolog.SetGlobalLevel(zerolog.Disabled)
	code := m.Run()
	if len(reports) > 0 {
		var b strings.Builder
		b.WriteString(reportHeader + "\n")
		for _, r := range reports {
			b.WriteString(r.String() + "\n")
		}
		fmt.Print(b.String())
		if path := os.Getenv("FAULTS_REPORT"); path != "" {
			if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "FAULTS_REPORT:", err)
				code = 1
			}
		}
	}
	os.Exit(code)
}
