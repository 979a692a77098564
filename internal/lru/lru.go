// Package lru is a bounded map for per-key state (rate limiters, verified
// tokens, leased bandwidth). It holds at most a fixed number of keys,
// evicting the least recently used, and evicts keys idle for longer than a
// fixed time.
package lru

import (
	"container/list"
	"sync"
	"time"
)

// Cache maps keys to values with a bound on size and idle time. It is safe
// for concurrent use. Time is passed in by the caller, so that tests can
// drive it.
type Cache[K comparable, V any] struct {
	max    int
	idle   time.Duration
	pinned func(V) bool

	mu        sync.Mutex
	ll        *list.List // front is most recently used
	m         map[K]*list.Element
	evictions uint64
}

type entry[K comparable, V any] struct {
	key  K
	val  V
	used time.Time
}

// New returns a cache of at most maxEntries keys (at least 1). If idle is
// positive, keys not used for longer than idle are evicted. If pinned is not
// nil, values for which it returns true are never evicted; they may make the
// cache exceed maxEntries, so pin only values bounded by other means (such as
// in-flight RPCs).
func New[K comparable, V any](maxEntries int, idle time.Duration, pinned func(V) bool) *Cache[K, V] {
	return &Cache[K, V]{
		max:    max(maxEntries, 1),
		idle:   idle,
		pinned: pinned,
		ll:     list.New(),
		m:      make(map[K]*list.Element),
	}
}

// Get returns the value for key and marks it used at now.
func (c *Cache[K, V]) Get(key K, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(now)
	if el, ok := c.m[key]; ok {
		e := el.Value.(*entry[K, V])
		e.used = now
		c.ll.MoveToFront(el)
		return e.val, true
	}
	var zero V
	return zero, false
}

// GetOrAdd returns the value for key, first storing create() if the key is
// absent, and marks it used at now.
func (c *Cache[K, V]) GetOrAdd(key K, now time.Time, create func() V) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(now)
	if el, ok := c.m[key]; ok {
		e := el.Value.(*entry[K, V])
		e.used = now
		c.ll.MoveToFront(el)
		return e.val
	}
	v := create()
	c.addLocked(key, v, now)
	return v
}

// Add stores v under key, replacing any value, and marks it used at now.
func (c *Cache[K, V]) Add(key K, v V, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(now)
	if el, ok := c.m[key]; ok {
		e := el.Value.(*entry[K, V])
		e.val, e.used = v, now
		c.ll.MoveToFront(el)
		return
	}
	c.addLocked(key, v, now)
}

// Remove deletes key.
func (c *Cache[K, V]) Remove(key K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		c.ll.Remove(el)
		delete(c.m, key)
	}
}

// Clear deletes every key.
func (c *Cache[K, V]) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ll.Init()
	clear(c.m)
}

// Len returns the number of keys held.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// Evictions returns how many keys were evicted for size or idleness.
func (c *Cache[K, V]) Evictions() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evictions
}

func (c *Cache[K, V]) addLocked(key K, v V, now time.Time) {
	c.m[key] = c.ll.PushFront(&entry[K, V]{key: key, val: v, used: now})
	// Evict from the least recently used end, skipping pinned values.
	el := c.ll.Back()
	for len(c.m) > c.max && el != nil {
		prev := el.Prev()
		if e := el.Value.(*entry[K, V]); e.key != key && !c.isPinned(e.val) {
			c.ll.Remove(el)
			delete(c.m, e.key)
			c.evictions++
		}
		el = prev
	}
}

// expireLocked evicts idle keys from the least recently used end. A pinned
// idle key is marked used and moved to the front.
func (c *Cache[K, V]) expireLocked(now time.Time) {
	if c.idle <= 0 {
		return
	}
	for n := c.ll.Len(); n > 0; n-- {
		el := c.ll.Back()
		e := el.Value.(*entry[K, V])
		if now.Sub(e.used) <= c.idle {
			return
		}
		if c.isPinned(e.val) {
			e.used = now
			c.ll.MoveToFront(el)
			continue
		}
		c.ll.Remove(el)
		delete(c.m, e.key)
		c.evictions++
	}
}

func (c *Cache[K, V]) isPinned(v V) bool {
	return c.pinned != nil && c.pinned(v)
}
