-- fail: RUNNING -> SCHEDULED / QUEUED (retry with backoff) or DEAD, only for the lease holder.
-- KEYS[1] job key prefix   KEYS[2] running   KEYS[3] queued   KEYS[4] scheduled   KEYS[5] dead
-- KEYS[6] seq counter      KEYS[7] wake marker   KEYS[8] deaths (events for on_dead hooks)
-- KEYS[9] cancelled
-- ARGV[1] JSON array of [uid, token, retry_delay_ms (-1 = do not retry), error_code, message,
--   traceback]
-- Returns one string per job: the new state, or '' when the lease was lost (or the record
-- does not parse: it is set aside as DEAD corrupt_job).
-- Attempts are bounded here too: no retry once attempts >= max_attempts (invariant 5).
-- A job going DEAD gets its death event in the same step (the DLQ worker's on_dead hooks).
-- A delivery an operator asked to stop (cancel.lua: ctok = its token) ends CANCELLED instead:
-- its attempt failed before its worker heard of the request.
local now = now_ms()
local bad_seq = check_seq(KEYS[6])
if bad_seq then return bad_seq end
local out = {}
local woke = false
local READS = {'state', 'token', 'attempts', 'max_att', 'prio', 'worker', 'started', 'ctok',
  'cby', 'type'}
local CHECKS = {'attempts', 'max_att', 'prio'}
for _, f in ipairs(cjson.decode(ARGV[1])) do
  local uid, token, delay = f[1], f[2], tonumber(f[3])
  local code, msg, tb = f[4], f[5], f[6]
  local jk = KEYS[1] .. uid
  local j = read_job(jk, READS)
  local problem = holds(j, token) and job_problem(j, 'running', CHECKS)
  if not holds(j, token) then
    out[#out + 1] = ''
  elseif problem then
    set_corrupt(jk, uid, KEYS[2], KEYS[5], KEYS[8], now, problem)
    out[#out + 1] = ''
  else
    local attempts = as_int(j.attempts, 0, 1e9) or 0
    redis.call('ZREM', KEYS[2], uid)
    flow_return(jk, uid, now)
    redis.call('HSET', jk, 'err_code', code, 'err_msg', msg, 'token', '')
    local state
    if j.ctok == token then -- asked to stop: the operator's cancel wins over a retry
      local why = 'cancelled by ' .. (j.cby or '?') .. ' while running (its attempt failed: '
        .. code .. ')'
      redis.call('ZADD', KEYS[9], now, uid)
      redis.call('HSET', jk, 'state', 'cancelled', 'finished', int(now), 'err_code',
        'cancelled', 'err_msg', why)
      add_history(jk, attempts, j.worker, j.started, now, 'cancelled', 'cancelled', why, tb)
      emit(KEYS[1], uid, 'cancelled', j.type, 'cancelled', j.attempts, 'cancelled')
      state = 'cancelled'
    elseif delay >= 0 and attempts < tonumber(j.max_att) then
      if delay == 0 then
        local seq = redis.call('INCR', KEYS[6])
        redis.call('HSET', jk, 'seq', seq, 'run_at', int(now))
        to_queued(jk, KEYS[3], uid, seq, j.prio)
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
      add_history(jk, attempts, j.worker, j.started, now, 'failed', code, msg, tb)
      emit(KEYS[1], uid, 'retrying', j.type, state, j.attempts, code)
    else
      redis.call('ZADD', KEYS[5], now, uid)
      redis.call('HSET', jk, 'state', 'dead', 'finished', int(now))
      add_history(jk, attempts, j.worker, j.started, now, 'dead', code, msg, tb)
      record_death(KEYS[8], jk, uid, now)
      emit(KEYS[1], uid, 'dead', j.type, 'dead', j.attempts, code)
      state = 'dead'
    end
    out[#out + 1] = state
    if state ~= 'cancelled' then
      count_series(KEYS[1], jk, now, state == 'dead' and 'd' or 'f', j.type or '')
    end
  end
end
if woke then wake(KEYS[7]) end
return out
