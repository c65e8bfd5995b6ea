-- retry: DEAD or CANCELLED -> QUEUED (manual retry). Attempts start again at 0; the history
-- keeps every earlier attempt and records who asked for the retry. Leaving DEAD counts as a
-- redrive (the `redrives` field bounds DLQ policies and tells a job's deaths apart).
-- A record that does not parse is not retried: a cancelled one is set aside as DEAD
-- corrupt_job, a dead one stays as it is; both answer 'corrupt:<what is wrong>'.
-- KEYS[1] job key prefix   KEYS[2] dead   KEYS[3] cancelled   KEYS[4] queued   KEYS[5] seq
-- KEYS[6] wake marker   KEYS[7] deaths
-- ARGV[1] actor, then the uids to retry (bulk redrives of the DLQ use redrive.lua)
-- Returns {uids, results}: per job 'retried', 'not_found', 'corrupt:...' or the state that
-- forbade the retry.
local now = now_ms()
local bad_seq = check_seq(KEYS[5])
if bad_seq then return bad_seq end
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
local out = {}
local woke = false
local READS, CHECKS = {'state', 'prio'}, {'prio'}
for _, uid in ipairs(ids) do
  local jk = KEYS[1] .. uid
  local j = read_job(jk, READS)
  local state = j.state
  local index
  if state == 'dead' then index = KEYS[2] elseif state == 'cancelled' then index = KEYS[3] end
  local problem = state and job_problem(j, nil, CHECKS)
  if not state then
    out[#out + 1] = 'not_found'
  elseif JOB_STATES[state] and not index then
    out[#out + 1] = state
  elseif problem then
    if state == 'cancelled' then set_corrupt(jk, uid, KEYS[3], KEYS[2], KEYS[7], now, problem) end
    out[#out + 1] = 'corrupt:' .. problem
  else
    redis.call('ZREM', index, uid)
    if state == 'dead' then redis.call('HINCRBY', jk, 'redrives', 1) end
    local seq = redis.call('INCR', KEYS[5])
    redis.call('HSET', jk, 'attempts', '0', 'seq', seq, 'run_at', int(now), 'finished', '',
      'token', '')
    to_queued(jk, KEYS[4], uid, seq, j.prio)
    add_history(jk, 0, ARGV[1], nil, now, 'retried', nil, 'moved from ' .. state .. ' to queued', nil)
    emit_event(jk, 'redriven', nil)
    out[#out + 1] = 'retried'
    woke = true
  end
end
if woke then wake(KEYS[6]) end
return {ids, out}
