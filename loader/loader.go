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
// load may be shared by many callers and outlive them all: the cache runs it
// detached from their cancellation (its value is written for every process),
// with no deadline unless the cache gives it one, so a Func should bound its
// own I/O when its source has no timeout.
type Func[K comparable, V any] func(ctx context.Context, key K) (V, error)

// BatchFunc loads the values of many keys in one call (an IN query, a
// multi-get). Keys absent from the map are not found.
//
// When it returns an error, the map holds the keys that did load, and
// the keys absent from it failed or were not found: a BatchFunc reports
// each failed key with a [*KeyError] (joined with errors.Join) so that the
// caller can tell them apart; a key not named by a KeyError is not found.
type BatchFunc[K comparable, V any] func(ctx context.Context, keys []K) (map[K]V, error)

// One adapts a batch loader to a single-key loader: a key absent from the
// batch's map is [ErrNotFound]; an error the batch names the key with (a
// [KeyError]) is that key's error.
func (f BatchFunc[K, V]) One() Func[K, V] {
	return func(ctx context.Context, key K) (V, error) {
		var zero V
		m, err := f(ctx, []K{key})
		if v, ok := m[key]; ok {
			return v, nil
		}
		if err != nil {
			if kerr := KeyErrorFor(err, key); kerr != nil {
				return zero, kerr
			}
			return zero, err
		}
		return zero, ErrNotFound
	}
}

// KeyErrorFor returns the error that err names key with: the Err of the
// first [KeyError] for key in err's tree (errors.Join and %w wrapping are
// walked), or nil when err names no error for key.
func KeyErrorFor[K comparable](err error, key K) error {
	var found error
	walkKeyErrors(err, func(ke *KeyError[K]) bool {
		if ke.Key == key {
			found = ke.Err
			return false
		}
		return true
	})
	return found
}

// KeyErrors returns every key that err names with a [KeyError], with its
// error. It is nil when err names no key, which for a [BatchFunc] means that
// err concerns every key it did not return.
func KeyErrors[K comparable](err error) map[K]error {
	var out map[K]error
	walkKeyErrors(err, func(ke *KeyError[K]) bool {
		if out == nil {
			out = make(map[K]error)
		}
		if _, dup := out[ke.Key]; !dup {
			out[ke.Key] = ke.Err
		}
		return true
	})
	return out
}

func walkKeyErrors[K comparable](err error, visit func(*KeyError[K]) bool) bool {
	if err == nil {
		return true
	}
	if ke, ok := err.(*KeyError[K]); ok {
		return visit(ke)
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if !walkKeyErrors(e, visit) {
				return false
			}
		}
	case interface{ Unwrap() error }:
		return walkKeyErrors(u.Unwrap(), visit)
	}
	return true
}
