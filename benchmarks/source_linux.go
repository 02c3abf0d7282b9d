package benchmarks

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// The file of a shared source is a header of sharedHeaderWords words (magic,
// record count, the creator's wall clock at creation in Unix nanoseconds),
// then a word per record for its version, then a word per record for its last
// completed update. Every process maps it MAP_SHARED and touches its words
// only with sync/atomic, which is coherent across processes on one machine.
const (
	sharedMagic       = 0x61736964652d7372 // "aside-sr"
	sharedHeaderWords = 8
)

// CreateSharedSource creates the file path holding records 0..n-1, all at
// version 0, and maps it. Other processes map the same records with
// [OpenSharedSource].
func CreateSharedSource(path string, n int) (*Source, error) {
	if n < 1 {
		return nil, fmt.Errorf("a shared source of %d records", n)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := (sharedHeaderWords + 2*n) * 8
	if err := f.Truncate(int64(size)); err != nil {
		return nil, err
	}
	s, words, err := mapSource(f, size, n)
	if err != nil {
		return nil, err
	}
	words[1].Store(uint64(n))
	words[2].Store(uint64(s.base.UnixNano()))
	words[0].Store(sharedMagic)
	return s, nil
}

// OpenSharedSource maps the records of a file made by [CreateSharedSource].
// Its Now counts from the creation of the file, by the wall clock at the
// moment of the call and by this process's monotonic clock after it.
func OpenSharedSource(path string) (*Source, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := int(fi.Size())
	n := (size/8 - sharedHeaderWords) / 2
	if n < 1 || size != (sharedHeaderWords+2*n)*8 {
		return nil, fmt.Errorf("%s: %d bytes is not a shared source", path, size)
	}
	s, words, err := mapSource(f, size, n)
	if err != nil {
		return nil, err
	}
	if words[0].Load() != sharedMagic || words[1].Load() != uint64(n) {
		err := fmt.Errorf("%s: not a shared source of %d records", path, n)
		return nil, errors.Join(err, s.Close())
	}
	s.epoch = time.Duration(s.base.UnixNano() - int64(words[2].Load()))
	return s, nil
}

// mapSource maps size bytes of f holding n records, and returns the source
// over them and the words of the header.
func mapSource(f *os.File, size, n int) (*Source, []atomic.Uint64, error) {
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap %s: %w", f.Name(), err)
	}
	// mmap returns page-aligned memory, so every word is aligned for
	// sync/atomic.
	words := unsafe.Slice((*atomic.Uint64)(unsafe.Pointer(&mem[0])), size/8)
	s := &Source{
		versions: unsafe.Slice((*atomic.Int64)(unsafe.Pointer(&words[sharedHeaderWords])), n),
		done:     words[sharedHeaderWords+n : sharedHeaderWords+2*n : sharedHeaderWords+2*n],
		base:     time.Now(),
		close:    func() error { return syscall.Munmap(mem) },
	}
	return s, words[:sharedHeaderWords:sharedHeaderWords], nil
}
