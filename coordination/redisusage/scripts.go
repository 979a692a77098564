package redisusage

import "github.com/redis/go-redis/v9"

// An owner's entry is one hash:
//
//	bytes, objects   its committed storage plus every hold
//	reconciled_at    when a tally last set it, in ms on Redis' clock
//	hold:<hash>      one hold: "BYTES OBJECTS SET_AT_MS"
//
// Every script reads Redis' clock (TIME), so replicas' clocks do not
// matter, and every write extends the entry's life to the idle TTL.

// now is the Lua prelude that reads Redis' clock in ms.
const now = `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
`

// parseHold is the Lua function that splits a hold's value.
const parseHold = `
local function hold(v)
  if not v then return 0, 0, 0 end
  local a = string.find(v, ' ')
  local b = string.find(v, ' ', a + 1)
  return tonumber(string.sub(v, 1, a - 1)), tonumber(string.sub(v, a + 1, (b or 0) - 1)), tonumber(b and string.sub(v, b + 1) or 0)
end
`

// getScript returns {1, bytes, objects, age ms} for entry KEYS[1], or {0}
// if there is none.
var getScript = redis.NewScript(now + `
local v = redis.call('HMGET', KEYS[1], 'reconciled_at', 'bytes', 'objects')
if not v[1] then
  return {0}
end
return {1, tonumber(v[2] or 0), tonumber(v[3] or 0), now - tonumber(v[1])}
`)

// reserveScript sets hold ARGV[1] of entry KEYS[1] to ARGV[2] bytes and
// ARGV[3] objects if the owner stays within the quota of ARGV[4] bytes and
// ARGV[5] objects (0: none) or the hold grows nothing. It returns {0} when
// set; {-1} when there is no entry (unless there is no quota: then it does
// nothing and returns {0}); {-2} when the entry is older than ARGV[6] ms
// and ARGV[8] is not "1"; and {1, objects?, limit, used, need, age ms} when
// the quota refuses. ARGV[7] is the idle TTL in ms.
var reserveScript = redis.NewScript(now + parseHold + `
local qb, qo = tonumber(ARGV[4]), tonumber(ARGV[5])
local at = redis.call('HGET', KEYS[1], 'reconciled_at')
if not at then
  if qb == 0 and qo == 0 then return {0} end
  return {-1}
end
local age = now - tonumber(at)
if ARGV[8] ~= '1' and age > tonumber(ARGV[6]) then
  return {-2}
end
local cb, co = hold(redis.call('HGET', KEYS[1], ARGV[1]))
local nb, no = tonumber(ARGV[2]), tonumber(ARGV[3])
local tb = tonumber(redis.call('HGET', KEYS[1], 'bytes') or 0)
local to = tonumber(redis.call('HGET', KEYS[1], 'objects') or 0)
if qb > 0 and nb > cb and tb - cb + nb > qb then
  return {1, 0, qb, tb - cb, nb, age}
end
if qo > 0 and no > co and to - co + no > qo then
  return {1, 1, qo, to - co, no, age}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. now)
redis.call('HINCRBY', KEYS[1], 'bytes', nb - cb)
redis.call('HINCRBY', KEYS[1], 'objects', no - co)
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return {0}
`)

// settleScript drops hold ARGV[1] of entry KEYS[1] (if ARGV[1] is not
// empty) and adds ARGV[2] bytes and ARGV[3] objects. An entry that does
// not exist stays so: its next tally finds the bucket as it is. ARGV[4] is
// the idle TTL in ms.
var settleScript = redis.NewScript(parseHold + `
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local cb, co = 0, 0
if ARGV[1] ~= '' then
  cb, co = hold(redis.call('HGET', KEYS[1], ARGV[1]))
  redis.call('HDEL', KEYS[1], ARGV[1])
end
redis.call('HINCRBY', KEYS[1], 'bytes', tonumber(ARGV[2]) - cb)
redis.call('HINCRBY', KEYS[1], 'objects', tonumber(ARGV[3]) - co)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`)

// beginScript starts a reconciliation of entry KEYS[1]: it returns
// {reconciled_at or "", now}, or {} if the entry exists and is at most
// ARGV[1] ms old (-1: any age), since another replica reconciled it.
var beginScript = redis.NewScript(now + `
local at = redis.call('HGET', KEYS[1], 'reconciled_at')
if at and (ARGV[1] == '-1' or now - tonumber(at) <= tonumber(ARGV[1])) then
  return {}
end
return {at or '', now}
`)

// reconcileScript replaces entry KEYS[1] by a tally, unless another
// reconciliation ended since this one began (reconciled_at is no longer
// ARGV[1]). ARGV[2] is when the tally began; ARGV[3] and ARGV[4] the
// committed bytes and objects it found; ARGV[5] the idle TTL; then come
// triples of a hold's field, bytes and objects. Holds set since the tally
// began are kept as they are, since the tally may have missed them; the
// others are replaced by the tally's (a hold the tally did not find has
// ended, or belongs to an upload no listing sees). It returns 1 if it
// replaced the entry.
var reconcileScript = redis.NewScript(now + parseHold + `
if (redis.call('HGET', KEYS[1], 'reconciled_at') or '') ~= ARGV[1] then
  return 0
end
local began = tonumber(ARGV[2])
local keep = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 5) == 'hold:' then
    local b, o, at = hold(all[i + 1])
    if at >= began then keep[all[i]] = all[i + 1] end
  end
end
redis.call('DEL', KEYS[1])
local tb, to = tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 6, #ARGV, 3 do
  if not keep[ARGV[i]] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1] .. ' ' .. ARGV[i + 2] .. ' ' .. ARGV[2])
    tb = tb + tonumber(ARGV[i + 1])
    to = to + tonumber(ARGV[i + 2])
  end
end
for f, v in pairs(keep) do
  redis.call('HSET', KEYS[1], f, v)
  local b, o = hold(v)
  tb = tb + b
  to = to + o
end
redis.call('HSET', KEYS[1], 'bytes', tb, 'objects', to, 'reconciled_at', now)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`)

var scripts = []*redis.Script{getScript, reserveScript, settleScript, beginScript, reconcileScript}
