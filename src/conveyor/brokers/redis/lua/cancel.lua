-- cancel: SCHEDULED or QUEUED -> CANCELLED.
-- KEYS[1] job key   KEYS[2] queued   KEYS[3] scheduled   KEYS[4] cancelled
-- ARGV[1] uid   ARGV[2] actor
-- Returns 'ok', or 'not_found', or the current state when it cannot be cancelled.
local now = now_ms()
local uid = ARGV[1]
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'not_found' end
local index
if state == 'queued' then index = KEYS[2] elseif state == 'scheduled' then index = KEYS[3] end
if not index then return state end
redis.call('ZREM', index, uid)
redis.call('ZADD', KEYS[4], now, uid)
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished', int(now), 'err_code', 'cancelled',
  'err_msg', 'cancelled by ' .. ARGV[2])
add_history(KEYS[1], redis.call('HGET', KEYS[1], 'attempts') or 0, ARGV[2], nil, now, 'cancelled',
  'cancelled', 'cancelled by ' .. ARGV[2], nil)
return 'ok'
