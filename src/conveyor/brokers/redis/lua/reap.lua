-- reap: the visibility timeout. RUNNING jobs whose lease deadline passed go back to QUEUED,
-- or to DEAD with code lease_expired when that was their last allowed attempt.
-- A job that dies here (a poison job: its lease expired max_attempts times) gets its death
-- event in the same step, and stays DEAD until an operator (or an opted-in policy) acts.
-- KEYS[1] job key prefix   KEYS[2] running   KEYS[3] queued   KEYS[4] dead   KEYS[5] wake marker
-- KEYS[6] deaths (events for on_dead hooks)
-- ARGV[1] limit
-- Returns {requeued, dead}
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local requeued, dead = 0, 0
for _, uid in ipairs(expired) do
  local jk = KEYS[1] .. uid
  redis.call('ZREM', KEYS[2], uid)
  if redis.call('EXISTS', jk) == 1 then
    local v = redis.call('HMGET', jk, 'attempts', 'max_att', 'worker', 'started', 'seq')
    local msg = 'lease expired: the worker died, hung or lost its connection'
    redis.call('HSET', jk, 'token', '', 'err_code', 'lease_expired', 'err_msg', msg)
    if tonumber(v[1]) >= tonumber(v[2]) then
      redis.call('ZADD', KEYS[4], now, uid)
      redis.call('HSET', jk, 'state', 'dead', 'finished', int(now))
      add_history(jk, v[1], v[3], v[4], now, 'dead', 'lease_expired', msg, nil)
      record_death(KEYS[6], jk, uid, now)
      dead = dead + 1
    else
      to_queued(jk, KEYS[3], uid, v[5])
      add_history(jk, v[1], v[3], v[4], now, 'lease_expired', 'lease_expired', msg, nil)
      requeued = requeued + 1
    end
  end
end
if requeued > 0 then wake(KEYS[5]) end
return {requeued, dead}
