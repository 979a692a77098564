package lru

import (
	"testing"
	"time"
)

func TestCacheBoundsSize(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := New[int, int](3, 0, nil)
	for i := range 10 {
		c.Add(i, i, now)
	}
	if got, want := c.Len(), 3; got != want {
		t.Fatalf("Len() = %d, want %d", got, want)
	}
	if got, want := c.Evictions(), uint64(7); got != want {
		t.Errorf("Evictions() = %d, want %d", got, want)
	}
	for _, tc := range []struct {
		key  int
		want bool
	}{{0, false}, {6, false}, {7, true}, {8, true}, {9, true}} {
		if _, ok := c.Get(tc.key, now); ok != tc.want {
			t.Errorf("Get(%d) found = %v, want %v", tc.key, ok, tc.want)
		}
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := New[string, int](2, 0, nil)
	c.Add("a", 1, now)
	c.Add("b", 2, now)
	c.Get("a", now) // a is now more recent than b
	c.Add("c", 3, now)
	if _, ok := c.Get("b", now); ok {
		t.Errorf("Get(b) found, want evicted")
	}
	if got, ok := c.Get("a", now); !ok || got != 1 {
		t.Errorf("Get(a) = %d, %v, want 1, true", got, ok)
	}
}

func TestCacheIdleEviction(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	c := New[string, int](10, time.Minute, nil)
	c.Add("old", 1, start)
	c.Add("fresh", 2, start.Add(50*time.Second))
	if _, ok := c.Get("old", start.Add(61*time.Second)); ok {
		t.Errorf("Get(old) after 61s idle found, want evicted")
	}
	if _, ok := c.Get("fresh", start.Add(61*time.Second)); !ok {
		t.Errorf("Get(fresh) after 11s idle not found, want found")
	}
}

func TestCacheKeepsPinned(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := New[int, int](2, time.Minute, func(v int) bool { return v < 0 })
	c.Add(1, -1, now) // pinned
	c.Add(2, 2, now)
	c.Add(3, 3, now)
	if _, ok := c.Get(1, now); !ok {
		t.Errorf("pinned key evicted for size")
	}
	if _, ok := c.Get(1, now.Add(time.Hour)); !ok {
		t.Errorf("pinned key evicted for idleness")
	}
	if got, want := c.Len(), 1; got != want {
		t.Errorf("Len() after an hour = %d, want %d (only the pinned key)", got, want)
	}
}

func TestGetOrAddCreatesOnce(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := New[string, *int](10, 0, nil)
	created := 0
	create := func() *int { created++; v := created; return &v }
	a := c.GetOrAdd("k", now, create)
	b := c.GetOrAdd("k", now, create)
	if a != b || created != 1 {
		t.Errorf("GetOrAdd twice: same value %v, created %d times, want same value and 1", a == b, created)
	}
}
