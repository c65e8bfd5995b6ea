-- release: RUNNING -> QUEUED without charging the attempt (graceful shutdown), lease holder only.
-- KEYS[1] job key prefix   KEYS[2] running   KEYS[3] queued   KEYS[4] wake marker
-- KEYS[5] dead   KEYS[6] deaths
-- ARGV[1] JSON array of [uid, token] or [uid, token, hold_ms]: the handler raised RateLimited,
--   so the job's limit key (or its queue) is held for hold_ms (flow control, see _lib.lua)
-- Returns one integer per job: 1 released, 0 rejected (lease lost, or a record that does not
-- parse, set aside as DEAD corrupt_job).
-- The job keeps its old seq, so it goes back to its old place, ahead of newer jobs.
local now = now_ms()
local out = {}
local released = 0
local READS = {'state', 'token', 'attempts', 'seq', 'prio', 'worker', 'started'}
local CHECKS = {'attempts', 'seq', 'prio'}
for _, l in ipairs(cjson.decode(ARGV[1])) do
  local uid, token = l[1], l[2]
  local jk = KEYS[1] .. uid
  local j = read_job(jk, READS)
  if not holds(j, token) then
    out[#out + 1] = 0
  else
    local problem = job_problem(j, 'running', CHECKS)
    if problem then
      set_corrupt(jk, uid, KEYS[2], KEYS[5], KEYS[6], now, problem)
      out[#out + 1] = 0
    else
      local attempts = as_int(j.attempts, 0, 1e9) or 0
      redis.call('ZREM', KEYS[2], uid)
      flow_return(jk, uid, now)
      redis.call('HSET', jk, 'token', '', 'attempts', math.max(attempts - 1, 0))
      to_queued(jk, KEYS[3], uid, j.seq, j.prio)
      local hold = tonumber(l[3])
      if hold then
        flow_hold(jk, uid, now, math.max(math.floor(hold), 0))
        add_history(jk, attempts, j.worker, j.started, now, 'released', 'rate_limited',
          'rate limited upstream: key held for ' .. int(hold) .. ' ms; attempt not charged', nil)
      else
        add_history(jk, attempts, j.worker, j.started, now, 'released', 'worker_shutdown',
          'released by a stopping worker; attempt not charged', nil)
      end
      emit_event(jk, 'released', nil)
      out[#out + 1] = 1
      released = released + 1
    end
  end
end
if released > 0 then wake(KEYS[4]) end
return out
