package s3store

import "sync"

// keyLocks records which keys are in use in this process. The zero value
// is ready to use.
type keyLocks struct {
	mu   sync.Mutex
	held map[string]struct{}
}

// tryLock takes key and reports whether it was free.
func (l *keyLocks) tryLock(key string) bool {
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

// unlock releases key.
func (l *keyLocks) unlock(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, key)
}

// isLocked reports whether key is held.
func (l *keyLocks) isLocked(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.held[key]
	return ok
}

// keyedMutex is a mutex per key. The zero value is ready to use.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*refMutex
}

// refMutex is a mutex with the number of callers that want it.
type refMutex struct {
	sync.Mutex
	refs int
}

// lock locks key and returns the func that unlocks it.
func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*refMutex)
	}
	m := k.m[key]
	if m == nil {
		m = new(refMutex)
		k.m[key] = m
	}
	m.refs++
	k.mu.Unlock()
	m.Lock()
	return func() {
		m.Unlock()
		k.mu.Lock()
		if m.refs--; m.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
