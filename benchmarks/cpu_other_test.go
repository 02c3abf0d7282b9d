//go:build !unix

package benchmarks

import "time"

// processCPU is not measured here: the probes report nothing.
func processCPU() (time.Duration, bool) { return 0, false }
