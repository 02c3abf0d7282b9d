//go:build !linux

package benchmarks

// workerAddrFromEnv reports whether this process is a worker of
// BenchmarkMixProcs, which runs on Linux only (it maps its shared source with
// mmap and ties its workers' lives to its own with Pdeathsig).
func workerAddrFromEnv() (string, bool) { return "", false }
