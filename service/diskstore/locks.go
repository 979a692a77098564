package diskstore

import "sync"

// uploadLocks records which resumable uploads are in use: held by the
// stream writing them, or by the janitor while it judges and removes them.
// A lock is named by the upload's key (see uploadKey). The zero value is
// ready to use.
type uploadLocks struct {
	mu   sync.Mutex
	held map[string]struct{}
}

// tryLock takes key and reports whether it was free.
func (l *uploadLocks) tryLock(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.held[key]; ok {
		return false
	}
	if l.held == nil {
		l.held = make(map[string]struct{})
	}
	l.held[key] = struct{}{}
	return true
}

// unlock releases key; the map forgets it.
func (l *uploadLocks) unlock(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, key)
}

// isLocked reports whether key is held.
func (l *uploadLocks) isLocked(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.held[key]
	return ok
}
