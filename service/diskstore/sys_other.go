//go:build !linux

package diskstore

import "syscall"

// startWriteback is not available here; it reports false so the caller
// stops asking.
func startWriteback(fd uintptr, off, n int64) bool { return false }

// setDigest does nothing here: digests are computed when files are opened.
func setDigest(rc syscall.RawConn, sum [32]byte) error { return nil }

// getDigest reports that no digest is stored.
func getDigest(rc syscall.RawConn) (sum [32]byte, ok bool) { return sum, false }
