-- webhook_disable: mark one webhook subscription disabled, once (the first reason stays).
-- One script rather than WATCH/MULTI, which redis-py's cluster pipeline does not carry out:
-- a delete in between cannot leave a stray half record. Not a queue script: its one key is
-- under the webhooks' own hash tag (see keys.py).
-- KEYS[1] the subscription's hash
-- ARGV[1] reason (already cut to its bound)
-- Returns 0 (no such subscription: nothing written), 1 (disabled now or already).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local was = redis.call('HGET', KEYS[1], 'disabled_ms')
if was and was ~= '' then
  return 1
end
redis.call('HSET', KEYS[1], 'disabled_ms', int(now_ms()), 'disabled_reason', ARGV[1])
return 1
