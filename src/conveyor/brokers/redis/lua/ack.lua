-- ack: RUNNING -> SUCCEEDED, only for the lease holder (a stale worker's late ack changes nothing).
-- KEYS[1] job key prefix   KEYS[2] running zset   KEYS[3] succeeded zset
-- ARGV[1] JSON array of [uid, token, result (JSON text)]
-- Returns one integer per job: 1 acked, 0 rejected (lease lost).
local now = now_ms()
local out = {}
for _, a in ipairs(cjson.decode(ARGV[1])) do
  local uid, token, result = a[1], a[2], a[3]
  local jk = KEYS[1] .. uid
  if holds_lease(jk, token) then
    local v = redis.call('HMGET', jk, 'attempts', 'worker', 'started')
    redis.call('ZREM', KEYS[2], uid)
    redis.call('ZADD', KEYS[3], now, uid)
    redis.call('HSET', jk, 'state', 'succeeded', 'finished', int(now), 'result', result,
      'token', '')
    add_history(jk, v[1], v[2], v[3], now, 'succeeded', nil, nil, nil)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
