//go:build race

package codec_test

// raceEnabled: the race detector changes allocation (sync.Pool drops items
// at random, for one), so tight allocation bounds are not checked under it.
const raceEnabled = true
