-- sched_pause: pause a schedule, or resume it with its next tick counted from now.
-- KEYS[1] the schedule's hash  cv:{q}:sched:<name>   KEYS[2] due zset  cv:{q}:sched_due
-- ARGV[1] name  ARGV[2] '1' pause | '0' resume  ARGV[3] the first tick after now (-1: none)
-- ARGV[4] lookahead ms
-- Outcomes: 'ok' | 'not_found'. Pausing a paused schedule, or resuming a running one,
-- changes nothing.
local sk, name = KEYS[1], ARGV[1]
local cur = redis.call('HMGET', sk, 'fp', 'paused', 'overlap')
if not cur[1] then return 'not_found' end
local was = '0'
if cur[2] == '1' then was = '1' end
if was == ARGV[2] then return 'ok' end
local now = int(now_ms())
if ARGV[2] == '1' then
  redis.call('HSET', sk, 'paused', '1', 'updated', now)
  redis.call('ZREM', KEYS[2], name)
  return 'ok'
end
local nxt = ARGV[3]
if nxt == '-1' then nxt = '' end
redis.call('HSET', sk, 'paused', '0', 'next', nxt, 'updated', now)
local n = as_int(nxt, 0, 9e15)
if n then
  if cur[3] ~= 'skip' then n = n - tonumber(ARGV[4]) end
  redis.call('ZADD', KEYS[2], n, name)
else
  redis.call('ZREM', KEYS[2], name)
end
return 'ok'
