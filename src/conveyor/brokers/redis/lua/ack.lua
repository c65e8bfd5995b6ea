-- ack: RUNNING -> SUCCEEDED, only for the lease holder (a stale worker's late ack changes nothing).
-- KEYS[1] job key prefix   KEYS[2] running zset   KEYS[3] succeeded zset
-- ARGV[1] JSON array of [uid, token, result (JSON text)]
-- Returns one integer per job: 1 acked (now, or before by this same lease), 0 rejected.
local now = now_ms()
local out = {}
for _, a in ipairs(cjson.decode(ARGV[1])) do
  local uid, token, result = a[1], a[2], a[3]
  local jk = KEYS[1] .. uid
  local cur = redis.call('HMGET', jk, 'state', 'token')
  if cur[1] == 'running' and cur[2] == token then
    local v = redis.call('HMGET', jk, 'attempts', 'worker', 'started')
    redis.call('ZREM', KEYS[2], uid)
    redis.call('ZADD', KEYS[3], now, uid)
    -- the token stays: a resent ack (its first reply lost) is recognised below
    redis.call('HSET', jk, 'state', 'succeeded', 'finished', int(now), 'result', result)
    add_history(jk, v[1], v[2], v[3], now, 'succeeded', nil, nil, nil)
    out[#out + 1] = 1
  elseif cur[1] == 'succeeded' and cur[2] == token then
    out[#out + 1] = 1 -- already acked by this very lease
  else
    out[#out + 1] = 0
  end
end
return out
