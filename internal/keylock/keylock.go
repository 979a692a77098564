// Package keylock records which keys (uploads, by the key a store names
// them with) are in use in this process, for the stores' one-writer rule.
package keylock

import "sync"

// Set is a set of held keys. The zero value is ready to use; it is safe
// for concurrent use.
type Set struct {
	mu   sync.Mutex
	held map[string]struct{}
}

// TryLock takes key and reports whether it was free.
func (s *Set) TryLock(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.held[key]; ok {
		return false
	}
	if s.held == nil {
		s.held = make(map[string]struct{})
	}
	s.held[key] = struct{}{}
	return true
}

// Unlock releases key; the set forgets it.
func (s *Set) Unlock(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, key)
}

// IsLocked reports whether key is held.
func (s *Set) IsLocked(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.held[key]
	return ok
}
