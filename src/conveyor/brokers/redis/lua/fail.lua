-- fail: RUNNING -> SCHEDULED / QUEUED (retry with backoff) or DEAD, only for the lease holder.
-- KEYS[1] job key prefix   KEYS[2] running   KEYS[3] queued   KEYS[4] scheduled   KEYS[5] dead
-- KEYS[6] seq counter      KEYS[7] wake marker   KEYS[8] deaths (events for on_dead hooks)
-- ARGV[1] JSON array of [uid, token, retry_delay_ms (-1 = do not retry), error_code, message,
--   traceback]
-- Returns one string per job: the new state, or '' when the lease was lost.
-- Attempts are bounded here too: no retry once attempts >= max_attempts (invariant 5).
-- A job going DEAD gets its death event in the same step (the DLQ worker's on_dead hooks).
local now = now_ms()
local out = {}
local woke = false
for _, f in ipairs(cjson.decode(ARGV[1])) do
  local uid, token, delay = f[1], f[2], tonumber(f[3])
  local code, msg, tb = f[4], f[5], f[6]
  local jk = KEYS[1] .. uid
  if holds_lease(jk, token) then
    local v = redis.call('HMGET', jk, 'attempts', 'max_att', 'worker', 'started')
    local attempts, maxatt = tonumber(v[1]), tonumber(v[2])
    redis.call('ZREM', KEYS[2], uid)
    redis.call('HSET', jk, 'err_code', code, 'err_msg', msg, 'token', '')
    local state
    if delay >= 0 and attempts < maxatt then
      if delay == 0 then
        local seq = redis.call('INCR', KEYS[6])
        redis.call('HSET', jk, 'seq', seq, 'run_at', int(now))
        to_queued(jk, KEYS[3], uid, seq)
        woke = true
        state = 'queued'
      else
        local due = now + delay
        redis.call('ZADD', KEYS[4], due, uid)
        redis.call('HSET', jk, 'state', 'scheduled', 'run_at', int(due))
        local first = redis.call('ZRANGE', KEYS[4], 0, 0)
        if first[1] == uid then woke = true end
        state = 'scheduled'
      end
      add_history(jk, v[1], v[3], v[4], now, 'failed', code, msg, tb)
    else
      redis.call('ZADD', KEYS[5], now, uid)
      redis.call('HSET', jk, 'state', 'dead', 'finished', int(now))
      add_history(jk, v[1], v[3], v[4], now, 'dead', code, msg, tb)
      record_death(KEYS[8], jk, uid, now)
      state = 'dead'
    end
    out[#out + 1] = state
  else
    out[#out + 1] = ''
  end
end
if woke then wake(KEYS[7]) end
return out
