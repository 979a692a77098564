package redislimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// acquireScript takes a slot of KEYS[1] if fewer than ARGV[1] unexpired
// leases are held: it drops expired members, counts the rest, and adds
// member ARGV[3] expiring ARGV[2] ms from now, all on Redis' clock so that
// replicas' clocks do not matter.
var acquireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`)

// refreshScript extends the lease ARGV[i+1] of KEYS[i] to ARGV[1] ms from
// now, adding it back if it is gone (Redis restarted empty, or the lease
// lapsed while Redis was unreachable): a slot still held is still in use.
var refreshScript = redis.NewScript(`
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', key, ttl)
end
return #KEYS
`)

// refreshBatch is the most leases refreshed by one script call.
const refreshBatch = 256

// slots holds this replica's leases and refreshes them.
type slots struct {
	l  *Limits
	id string // this instance's part of every member
	n  atomic.Uint64

	// writes orders lease writes: releases share it, a refresh takes it
	// alone, so a refresh never writes back a lease released during it.
	writes sync.RWMutex
	mu     sync.Mutex
	held   map[string]string // member → Redis key

	kickc    chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func newSlots(l *Limits) *slots {
	var b [8]byte
	rand.Read(b[:])
	s := &slots{
		l: l, id: hex.EncodeToString(b[:]), held: map[string]string{},
		kickc: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	return s
}

// start starts the refresher, once the Limits it belongs to is complete.
func (s *slots) start() { go s.refresher() }

// acquire implements coordination.Counter.
func (s *slots) acquire(ctx context.Context, key string, max int) (func(), bool) {
	l := s.l
	if !l.br.Usable() {
		l.fellBack(ctx)
		return l.local.Acquire(ctx, key, max)
	}
	rkey := l.key("slots:", key)
	member := s.id + ":" + strconv.FormatUint(s.n.Add(1), 36)
	cctx, cancel := l.callContext(ctx)
	got, err := acquireScript.Run(cctx, l.rdb, []string{rkey}, max, l.o.LeaseTTL.Milliseconds(), member).Int()
	cancel()
	if err != nil {
		l.br.Fail(err)
		l.fellBack(ctx)
		return l.local.Acquire(ctx, key, max)
	}
	if got == 0 {
		return nil, false
	}
	s.mu.Lock()
	s.held[member] = rkey
	s.mu.Unlock()
	return sync.OnceFunc(func() { s.release(rkey, member) }), true
}

// release frees a lease. If Redis does not answer, the lease expires
// within the TTL, since it is no longer refreshed.
func (s *slots) release(rkey, member string) {
	s.writes.RLock()
	defer s.writes.RUnlock()
	s.mu.Lock()
	delete(s.held, member)
	s.mu.Unlock()
	if !s.l.br.Usable() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.l.o.Timeout)
	defer cancel()
	if err := s.l.rdb.ZRem(ctx, rkey, member).Err(); err != nil {
		s.l.br.Fail(err)
	}
}

// kick asks the refresher to refresh now (Redis answers again).
func (s *slots) kick() {
	select {
	case s.kickc <- struct{}{}:
	default:
	}
}

func (s *slots) refresher() {
	defer close(s.done)
	t := time.NewTicker(max(s.l.o.LeaseTTL/3, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.kickc:
		}
		s.refresh()
	}
}

// refresh extends every lease held, a batch per round trip.
func (s *slots) refresh() {
	s.writes.Lock()
	defer s.writes.Unlock()
	if !s.l.br.Usable() {
		return
	}
	s.mu.Lock()
	keys := make([]string, 0, len(s.held))
	args := make([]any, 1, len(s.held)+1)
	args[0] = s.l.o.LeaseTTL.Milliseconds()
	for member, rkey := range s.held {
		keys = append(keys, rkey)
		args = append(args, member)
	}
	s.mu.Unlock()
	for len(keys) > 0 {
		n := min(len(keys), refreshBatch)
		ctx, cancel := context.WithTimeout(context.Background(), s.l.o.Timeout)
		err := refreshScript.Run(ctx, s.l.rdb, keys[:n], append(args[:1:1], args[1:n+1]...)...).Err()
		cancel()
		if err != nil {
			s.l.br.Fail(err)
			return
		}
		keys, args = keys[n:], append(args[:1:1], args[n+1:]...)
	}
}

func (s *slots) close() {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
}
