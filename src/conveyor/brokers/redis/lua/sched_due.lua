-- sched_due: reads the schedules of one queue whose fire time has come (due score <= now).
-- KEYS[1] due zset  cv:{q}:sched_due   KEYS[2] schedule hash prefix  cv:{q}:sched:
-- ARGV[1] limit
-- Returns {now_ms, {{name, definition, fingerprint, next}, ...}}; a due entry whose hash is
-- gone (or has no usable next tick) is dropped from the due index.
local now = now_ms()
local names = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, name in ipairs(names) do
  local h = redis.call('HMGET', KEYS[2] .. name, 'def', 'fp', 'next', 'paused')
  if h[1] and h[2] and as_int(h[3], 0, 9e15) and h[4] ~= '1' then
    out[#out + 1] = {name, h[1], h[2], h[3]}
  else
    redis.call('ZREM', KEYS[1], name)
  end
end
return {int(now), out}
