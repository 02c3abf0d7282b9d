package loader

import (
	"bytes"
	"errors"
	"fmt"
	"runtime/debug"
)

// ErrPanic is wrapped by the error that every caller of a load receives when
// the load panicked: a [*PanicError]. Loads run on goroutines of their own,
// where a panic would crash the process and leave the callers waiting
// forever, so loader recovers it and hands it to them instead.
var ErrPanic = errors.New("loader: load panicked")

// NoCache is returned by a load, next to its value, for a value that is to
// be returned to its callers but not cached: neither written to Redis nor
// kept in process memory (a partial result, a value for one user only, an
// answer from a fallback source). The next read of the key loads again.
//
//	return row, loader.NoCache
//
// A [BatchFunc] marks such keys with a [*KeyError] wrapping NoCache, next to
// their value in the map, or returns NoCache itself for every value it
// returned. [Func.Batch] does the former for the loads that return it.
//
//lint:ignore ST1012 NoCache is not a failure but an instruction, read as "no cache"; the name is kept.
var NoCache = errors.New("loader: value not to be cached")

// ErrGoexit is the error that every caller of a load receives when the load
// called runtime.Goexit (which t.FailNow does in tests): its goroutine ends
// without a result, and the callers must not wait for one.
var ErrGoexit = errors.New("loader: load called runtime.Goexit")

// PanicError is a panic recovered from a load. It wraps [ErrPanic], and the
// panic value too when that is an error.
type PanicError struct {
	// Value is the value given to panic.
	Value any
	// Stack is the stack of the goroutine that panicked, taken at the
	// panic, without its first line ("goroutine N [running]:", which would
	// name a goroutine that no longer exists).
	Stack []byte
}

func newPanicError(v any) *PanicError {
	stack := debug.Stack()
	if i := bytes.IndexByte(stack, '\n'); i >= 0 {
		stack = stack[i+1:]
	}
	return &PanicError{Value: v, Stack: stack}
}

// Error returns a one-line message with the panic value. The stack is left
// out because every caller of a shared load receives the same error and may
// log it; it is in Stack.
func (e *PanicError) Error() string {
	return fmt.Sprintf("%v: %v", ErrPanic, e.Value)
}

// Is reports whether target is [ErrPanic].
func (e *PanicError) Is(target error) bool {
	return target == ErrPanic
}

// Unwrap returns the panic value if it is an error, and nil otherwise.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// KeyError is the failure of one key of a batch load. Find the keys that
// failed in a joined error by walking it (an error with Unwrap() []error),
// or the first of them with errors.As.
type KeyError[K comparable] struct {
	// Key is the key that failed to load.
	Key K
	// Err is the error of its load.
	Err error
}

// Error returns "key <Key>: <Err>", or Err's text alone when Err names the
// key itself (it has a method NamesKey that returns true, as the cache
// package's errors do), so that the key is named once.
func (e *KeyError[K]) Error() string {
	if n, ok := e.Err.(interface{ NamesKey() bool }); ok && n.NamesKey() {
		return e.Err.Error()
	}
	return fmt.Sprintf("key %v: %v", e.Key, e.Err)
}

// Unwrap returns Err.
func (e *KeyError[K]) Unwrap() error {
	return e.Err
}
