package s3store

import "sync"

// streamHolds records which resumable uploads, by state key, a stream of
// this process holds (by its writer token) or the janitor judges. A
// stream that was granted the upload's lease replaces another stream's
// hold (that stream lost the lease), never the janitor's. The zero value
// is ready to use.
type streamHolds struct {
	mu   sync.Mutex
	held map[string]string // state key → writer token, or judging
}

// judging is the janitor's token; writer tokens are never empty.
const judging = ""

// hold records that the stream token holds key, unless the janitor judges
// it.
func (h *streamHolds) hold(key, token string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cur, ok := h.held[key]; ok && cur == judging {
		return false
	}
	if h.held == nil {
		h.held = make(map[string]string)
	}
	h.held[key] = token
	return true
}

// judge records that the janitor judges key, if nothing holds it.
func (h *streamHolds) judge(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.held[key]; ok {
		return false
	}
	if h.held == nil {
		h.held = make(map[string]string)
	}
	h.held[key] = judging
	return true
}

// drop ends token's hold of key, if it still has it.
func (h *streamHolds) drop(key, token string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cur, ok := h.held[key]; ok && cur == token {
		delete(h.held, key)
	}
}

// isHeld reports whether a stream holds key or the janitor judges it.
func (h *streamHolds) isHeld(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.held[key]
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
