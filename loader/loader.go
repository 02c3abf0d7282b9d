package loader

import (
	"context"
	"errors"
)

// ErrNotFound means the source has no such record. A loader returns it,
// wrapped or not, for a key that does not exist, so that the cache can
// store a not-found marker instead of calling the source again for that key;
// test for it with errors.Is.
var ErrNotFound = errors.New("loader: not found")

// Func loads the value of one key from the source of truth (a database, an
// API). It returns an error wrapping [ErrNotFound] when the source has no
// such record.
//
// The context carries the values of the caller that started the load, but a
// load may be shared by many callers and outlive the first of them: it is
// cancelled only when no caller waits any more (see [Group.Do]), and it has
// no deadline unless the cache gives it one, so a Func should bound its own
// I/O when its source has no timeout.
type Func[K comparable, V any] func(ctx context.Context, key K) (V, error)

// BatchFunc loads the values of many keys in one call (an IN query, a
// multi-get). Keys absent from the map are not found.
//
// When it returns an error, the map holds the keys that did load, and
// the keys absent from it failed or were not found: a BatchFunc reports
// each failed key with a [*KeyError] (joined with errors.Join) so that the
// caller can tell them apart; a key not named by a KeyError is not found.
type BatchFunc[K comparable, V any] func(ctx context.Context, keys []K) (map[K]V, error)
