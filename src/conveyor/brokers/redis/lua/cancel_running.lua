-- cancel_running: RUNNING -> CANCELLED by the lease holder, for a delivery an operator asked to
-- stop (cancel.lua recorded ctok = its token): a stale token, or no request, changes nothing.
-- KEYS[1] job key prefix   KEYS[2] running   KEYS[3] cancelled   KEYS[4] dead   KEYS[5] deaths
-- ARGV[1] JSON array of [uid, token]
-- Returns one integer per job: 1 cancelled, 0 rejected (lease lost, no request for this
-- delivery, or a record that does not parse, set aside as DEAD corrupt_job).
local now = now_ms()
local out = {}
local READS = {'state', 'token', 'attempts', 'worker', 'started', 'ctok', 'cby'}
local CHECKS = {'attempts'}
for _, a in ipairs(cjson.decode(ARGV[1])) do
  local uid, token = a[1], a[2]
  local jk = KEYS[1] .. uid
  local j = read_job(jk, READS)
  if holds(j, token) and j.ctok == token then
    local problem = job_problem(j, 'running', CHECKS)
    if problem then
      set_corrupt(jk, uid, KEYS[2], KEYS[4], KEYS[5], now, problem)
      out[#out + 1] = 0
    else
      local msg = 'cancelled by ' .. (j.cby or '?') .. ' while running'
      redis.call('ZREM', KEYS[2], uid)
      redis.call('ZADD', KEYS[3], now, uid)
      redis.call('HSET', jk, 'state', 'cancelled', 'finished', int(now), 'token', '',
        'err_code', 'cancelled', 'err_msg', msg)
      add_history(jk, j.attempts, j.worker, j.started, now, 'cancelled', 'cancelled', msg, nil)
      emit_event(jk, 'cancelled', 'cancelled')
      out[#out + 1] = 1
    end
  else
    out[#out + 1] = 0
  end
end
return out
