package redislimit

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/internal/lru"
)

// reserveScript reserves ARGV[1] µs worth of a GCRA bucket whose burst is
// ARGV[2] µs, if the reservation comes due within ARGV[3] µs. KEYS[1] holds
// the bucket's theoretical arrival time in µs (since 2017, on Redis' clock).
// It returns {1, µs until the reservation is due}, or {0, 0} without
// reserving anything.
//
// It is written here rather than with redis_rate because redis_rate only
// refuses a block that is not yet available, which would cost a second round
// trip per block whenever the limit throttles; a reservation that the
// replica waits out locally costs one, and queues replicas fairly.
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = (t[1] - 1483228800) * 1000000 + t[2]
local cost = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local maxwait = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local new_tat = tat + cost
local wait = new_tat - burst - now
if wait > maxwait then
  return {0, 0}
end
redis.call('SET', KEYS[1], string.format('%d', math.ceil(new_tat)), 'PX', math.ceil((new_tat - now) / 1000) + 1)
if wait < 0 then
  wait = 0
end
return {1, math.ceil(wait)}
`)

var errReply = errors.New("redislimit: unexpected reply from the reserve script")

// noDeadline is the longest reservation a caller without a deadline waits
// for.
const noDeadline = time.Hour

// bandwidth spends leased blocks locally. Each key's credit is the leased
// bytes not yet spent: at most one block per key and replica, forgotten
// with the key after IdleTTL.
type bandwidth struct {
	l       *Limits
	credits *lru.Cache[string, *credit]
}

type credit struct {
	lock  chan struct{} // a mutex that a waiter can give up on
	bytes int
}

func newBandwidth(l *Limits) *bandwidth {
	o := coordination.LocalOptions{MaxKeys: l.o.MaxKeys, IdleTTL: l.o.IdleTTL}
	if o.MaxKeys <= 0 {
		o.MaxKeys = coordination.DefaultMaxKeys
	}
	if o.IdleTTL <= 0 {
		o.IdleTTL = coordination.DefaultIdleTTL
	}
	return &bandwidth{l: l, credits: lru.New[string, *credit](o.MaxKeys, o.IdleTTL, nil)}
}

// wait implements coordination.Bandwidth.
func (b *bandwidth) wait(ctx context.Context, key string, limit coordination.Limit, n int) error {
	l := b.l
	if limit.PerSecond < 0 || n <= 0 {
		return nil
	}
	if limit.PerSecond == 0 { // no rate to lease from: the burst alone, locally
		return l.local.Wait(ctx, key, limit, n)
	}
	if !l.br.Usable() {
		l.fellBack(ctx)
		return l.local.Wait(ctx, key, limit, n)
	}
	c := b.credits.GetOrAdd(key, time.Now(), func() *credit { return &credit{lock: make(chan struct{}, 1)} })
	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.lock }()
	if err := ctx.Err(); err != nil {
		return err
	}
	rkey := l.key("bytes:", key)
	block := blockSize(limit, l.o.BlockSize)
	for {
		if c.bytes >= n {
			c.bytes -= n
			return nil
		}
		n -= c.bytes
		c.bytes = 0
		if !l.br.Usable() {
			l.fellBack(ctx)
			return l.local.Wait(ctx, key, limit, n)
		}
		wait, ok, err := b.reserve(ctx, rkey, limit, block)
		if err != nil {
			l.br.Fail(err)
			l.fellBack(ctx)
			return l.local.Wait(ctx, key, limit, n)
		}
		if !ok {
			return coordination.ErrWouldExceedDeadline
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err() // the reserved block is lost
			}
		}
		c.bytes += block
	}
}

// reserve reserves block bytes of rkey's bucket in one round trip and
// returns how long until they are due; ok is false if that is after ctx's
// deadline.
func (b *bandwidth) reserve(ctx context.Context, rkey string, limit coordination.Limit, block int) (wait time.Duration, ok bool, err error) {
	maxWait := noDeadline
	if d, has := ctx.Deadline(); has {
		maxWait = time.Until(d)
	}
	perByte := 1e6 / limit.PerSecond // µs
	cctx, cancel := b.l.callContext(ctx)
	defer cancel()
	res, err := reserveScript.Run(cctx, b.l.rdb, []string{rkey},
		strconv.FormatFloat(float64(block)*perByte, 'f', 3, 64),
		strconv.FormatFloat(float64(max(limit.Burst, block))*perByte, 'f', 3, 64),
		maxWait.Microseconds()).Int64Slice()
	if err != nil {
		return 0, false, err
	}
	if len(res) != 2 {
		return 0, false, errReply
	}
	return time.Duration(res[1]) * time.Microsecond, res[0] == 1, nil
}

// blockSize returns the bytes leased per round trip under limit: at most
// max, the burst, and an eighth of a second of the rate (but at least
// minBlock unless the burst is smaller).
func blockSize(limit coordination.Limit, maxBlock int) int {
	perEighth := int(min(limit.PerSecond/8, float64(maxBlock)))
	return max(1, min(maxBlock, max(minBlock, perEighth), max(limit.Burst, 1)))
}
