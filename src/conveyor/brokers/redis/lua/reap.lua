-- reap: the visibility timeout. RUNNING jobs whose lease deadline passed go back to QUEUED,
-- or to DEAD with code lease_expired when that was their last allowed attempt.
-- A job that dies here (a poison job: its lease expired max_attempts times) gets its death
-- event in the same step, and stays DEAD until an operator (or an opted-in policy) acts.
-- A record that does not parse is set aside as DEAD corrupt_job (see job_problem).
-- A job whose current delivery was asked to stop (ctok = its token: cancel.lua) ends CANCELLED.
-- KEYS[1] job key prefix   KEYS[2] running   KEYS[3] queued   KEYS[4] dead   KEYS[5] wake marker
-- KEYS[6] deaths (events for on_dead hooks)   KEYS[7] cancelled
-- ARGV[1] limit
-- Returns {requeued, dead, set aside, cancelled}
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local requeued, dead, aside, cancelled = 0, 0, 0, 0
local msg = 'lease expired: the worker died, hung or lost its connection'
local READS = {'state', 'attempts', 'max_att', 'seq', 'prio', 'worker', 'started', 'token',
  'ctok', 'cby'}
local CHECKS = {'attempts', 'max_att', 'seq', 'prio'}
for _, uid in ipairs(expired) do
  local jk = KEYS[1] .. uid
  local j = read_job(jk, READS)
  local problem = j.state and job_problem(j, 'running', CHECKS)
  redis.call('ZREM', KEYS[2], uid)
  if problem then
    set_corrupt(jk, uid, nil, KEYS[4], KEYS[6], now, problem)
    aside = aside + 1
  elseif j.state and j.ctok and j.ctok ~= '' and j.ctok == j.token then
    local by = 'cancelled by ' .. (j.cby or '?') .. ' (the worker\'s lease expired first)'
    redis.call('ZADD', KEYS[7], now, uid)
    redis.call('HSET', jk, 'state', 'cancelled', 'finished', int(now), 'token', '',
      'err_code', 'cancelled', 'err_msg', by)
    add_history(jk, j.attempts, j.worker, j.started, now, 'cancelled', 'cancelled', by, nil)
    emit_event(jk, 'cancelled', 'cancelled')
    cancelled = cancelled + 1
  elseif j.state then
    flow_return(jk, uid, now)
    redis.call('HSET', jk, 'token', '', 'err_code', 'lease_expired', 'err_msg', msg)
    if (as_int(j.attempts, 0, 1e9) or 0) >= tonumber(j.max_att) then
      redis.call('ZADD', KEYS[4], now, uid)
      redis.call('HSET', jk, 'state', 'dead', 'finished', int(now))
      add_history(jk, j.attempts, j.worker, j.started, now, 'dead', 'lease_expired', msg, nil)
      record_death(KEYS[6], jk, uid, now)
      emit_event(jk, 'dead', 'lease_expired')
      count_series(KEYS[1], jk, now, 'd')
      dead = dead + 1
    else
      to_queued(jk, KEYS[3], uid, j.seq, j.prio)
      add_history(jk, j.attempts, j.worker, j.started, now, 'lease_expired', 'lease_expired',
        msg, nil)
      emit_event(jk, 'lease_expired', 'lease_expired')
      count_series(KEYS[1], jk, now, 'f')
      requeued = requeued + 1
    end
  end
end
if requeued > 0 then wake(KEYS[5]) end
return {requeued, dead, aside, cancelled}
