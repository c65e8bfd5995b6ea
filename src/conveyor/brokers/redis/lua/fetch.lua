-- fetch: promote due jobs, then lease up to `count` QUEUED jobs (QUEUED -> RUNNING).
-- KEYS[1] job key prefix   KEYS[2] queued   KEYS[3] scheduled   KEYS[4] running
-- KEYS[5] seq counter      KEYS[6] wake marker   KEYS[7] paused flag
-- ARGV[1] count   ARGV[2] lease_ms   ARGV[3] worker id   ARGV[4] promote limit
-- ARGV[5] lease nonce: 128 random bits made by the caller; the i-th job leased gets the token
--   '<nonce>.<i>', never a counter a lost write could roll back (invariant 3)
-- Returns {now_ms, next_due_ms (-1 none), {uid, token, type, payload, attempts, max_att, timeout}...}
local now = now_ms()
if redis.call('EXISTS', KEYS[7]) == 1 then
  return {int(now), next_due(KEYS[3]), {}}
end
promote(KEYS[1], KEYS[3], KEYS[2], KEYS[5], now, tonumber(ARGV[4]))
local popped = redis.call('ZPOPMIN', KEYS[2], tonumber(ARGV[1]))
local deadline = int(now + tonumber(ARGV[2]))
local out = {}
local nonce = ARGV[5]
for i = 1, #popped, 2 do
  local uid = popped[i]
  local jk = KEYS[1] .. uid
  if redis.call('EXISTS', jk) == 1 then
    local token = nonce .. '.' .. (#out + 1)
    local attempts = redis.call('HINCRBY', jk, 'attempts', 1)
    redis.call('HSET', jk, 'state', 'running', 'token', token, 'started', int(now),
      'worker', ARGV[3], 'deadline', deadline)
    redis.call('ZADD', KEYS[4], deadline, uid)
    local v = redis.call('HMGET', jk, 'type', 'payload', 'max_att', 'timeout')
    out[#out + 1] = {uid, token, v[1], v[2], attempts, v[3], v[4]}
  end
end
if redis.call('ZCARD', KEYS[2]) > 0 then
  -- work left: pass the baton to another idle worker (a full worker that was woken calls
  -- fetch with count 0 just for this)
  wake(KEYS[6])
end
return {int(now), next_due(KEYS[3]), out}
