// Package benchmarks compares aside with other ways of caching typed values
// on Redis, side by side in one `go test -bench` run against one private
// redis-server (see README.md). It is its own module so that the libraries it
// compares never enter aside's go.mod.
//
// The package itself holds only what every contender shares: the value they
// all cache ([User]) and the source of truth they all load it from
// ([Source]). The benchmarks are in the _test.go files; the chart program is
// in ./chart.
package benchmarks
