package redislease

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// acquireScript takes lease KEYS[1] for holder ARGV[1], for ARGV[2] ms, if
// it is free, held by the holder already, or held by ARGV[3] (a holder
// that was asked to let go and did not, in time); it then removes its own
// request KEYS[2]. Otherwise, if ARGV[4] is "1", it asks the holder to let
// go: the request key names the asker for ARGV[5] ms, and a PUBLISH on
// channel ARGV[6] tells the holder's replica at once. It returns "" when
// the key is taken, else its holder.
var acquireScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur or cur == ARGV[1] or (ARGV[3] ~= '' and cur == ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  if redis.call('GET', KEYS[2]) == ARGV[1] then
    redis.call('DEL', KEYS[2])
  end
  return ''
end
if ARGV[4] == '1' then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[5])
  redis.call('PUBLISH', ARGV[6], 'req ' .. KEYS[1] .. ' ' .. ARGV[1])
end
return cur
`)

// refreshScript keeps leases alive: for each pair of KEYS (a lease and its
// request key) and the holder in ARGV[i/2+2], it extends the lease to
// ARGV[1] ms, writing it back if it is gone (Redis restarted empty, or it
// lapsed while Redis was unreachable), unless another holder has it. It
// returns a code per lease: 0 another holder has it, 1 kept, 2 kept but
// another acquirer asks for it.
var refreshScript = redis.NewScript(`
local out = {}
for i = 1, #KEYS, 2 do
  local h = ARGV[(i + 1) / 2 + 1]
  local cur = redis.call('GET', KEYS[i])
  if cur and cur ~= h then
    out[#out + 1] = 0
  else
    redis.call('SET', KEYS[i], h, 'PX', ARGV[1])
    local r = redis.call('GET', KEYS[i + 1])
    if r and r ~= h then
      out[#out + 1] = 2
    else
      out[#out + 1] = 1
    end
  end
end
return out
`)

// releaseScript deletes lease KEYS[1] if holder ARGV[1] has it, and then
// tells waiting acquirers on channel ARGV[2].
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], 'rel ' .. KEYS[1])
return 1
`)

// refreshBatch is the most leases one refresh call carries.
const refreshBatch = 128

// Codes of refreshScript.
const (
	refreshTaken     = 0
	refreshKept      = 1
	refreshRequested = 2
)

// kick asks the keep-alive to run now (Redis answers again).
func (l *Leases) kick() {
	select {
	case l.kickc <- struct{}{}:
	default:
	}
}

// keepAlive refreshes every lease held every TTL/3, and when kicked.
func (l *Leases) keepAlive() {
	defer l.wg.Done()
	t := time.NewTicker(max(l.o.TTL/3, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		case <-l.kickc:
		}
		l.refresh()
		l.refreshes.Add(1)
	}
}

// refresh extends every lease held, a batch per round trip, and signals
// those taken or asked for. A failure leaves them as they are: the fence
// guards them until Redis answers.
func (l *Leases) refresh() {
	l.writes.Lock()
	defer l.writes.Unlock()
	if !l.br.Usable() {
		return
	}
	l.mu.Lock()
	all := make([]*lease, 0, len(l.held))
	for _, list := range l.held {
		all = append(all, list...)
	}
	l.mu.Unlock()
	for len(all) > 0 {
		batch := all[:min(len(all), refreshBatch)]
		all = all[len(batch):]
		keys := make([]string, 0, 2*len(batch))
		args := make([]any, 1, len(batch)+1)
		args[0] = l.o.TTL.Milliseconds()
		for _, ls := range batch {
			keys = append(keys, ls.key, ls.req)
			args = append(args, ls.holder)
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.o.Timeout)
		codes, err := refreshScript.Run(ctx, l.rdb, keys, args...).Int64Slice()
		cancel()
		if err != nil {
			l.br.Fail(err)
			return
		}
		for i, code := range codes {
			switch ls := batch[i]; code {
			case refreshTaken:
				l.forget(ls)
				ls.signal()
			case refreshRequested:
				ls.signal()
			}
		}
	}
}
