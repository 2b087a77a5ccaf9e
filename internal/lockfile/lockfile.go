// Package lockfile serialises work on one cache entry across processes
// (parallel test packages, two CLI runs) with flock(2).
package lockfile

import (
	"os"
	"path/filepath"
	"syscall"
)

// Lock takes an exclusive lock on path, creating it, and returns the unlock.
func Lock(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
