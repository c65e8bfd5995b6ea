-- cancel: SCHEDULED or QUEUED -> CANCELLED; on a RUNNING job, record a cancel request for its
-- current delivery instead (fields ctok = that delivery's token, cby = the actor): the lease
-- holder learns it from its next heartbeat and ends the job itself (cancel_running.lua), or
-- reap ends it CANCELLED if the holder is gone.
-- KEYS[1] job key   KEYS[2] queued   KEYS[3] scheduled   KEYS[4] cancelled   KEYS[5] dead
-- KEYS[6] deaths
-- ARGV[1] uid   ARGV[2] actor
-- Returns 'ok', 'requested' (RUNNING: the request is recorded), or 'not_found', or the current state when it cannot be cancelled, or
-- 'corrupt:<what is wrong>' for a record that does not parse (set aside as DEAD corrupt_job).
local now = now_ms()
local uid = ARGV[1]
local j = read_job(KEYS[1], {'state', 'attempts', 'token'})
if not j.state then return 'not_found' end
if j.state == 'running' then -- writes only the two request fields: nothing else to check
  if not j.token or j.token == '' then return 'corrupt:field token is missing' end
  redis.call('HSET', KEYS[1], 'ctok', j.token, 'cby', ARGV[2])
  return 'requested'
end
local index
if j.state == 'queued' then index = KEYS[2] elseif j.state == 'scheduled' then index = KEYS[3] end
if JOB_STATES[j.state] and not index then return j.state end
if j.state == 'queued' then flow_unlane(KEYS[1], uid, now) end
local problem = job_problem(j, nil, {'attempts'})
if problem then
  if not index then redis.call('ZREM', KEYS[2], uid) redis.call('ZREM', KEYS[3], uid) end
  set_corrupt(KEYS[1], uid, index, KEYS[5], KEYS[6], now, problem)
  return 'corrupt:' .. problem
end
redis.call('ZREM', index, uid)
redis.call('ZADD', KEYS[4], now, uid)
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished', int(now), 'err_code', 'cancelled',
  'err_msg', 'cancelled by ' .. ARGV[2])
add_history(KEYS[1], j.attempts or 0, ARGV[2], nil, now, 'cancelled', 'cancelled',
  'cancelled by ' .. ARGV[2], nil)
emit_event(KEYS[1], 'cancelled', 'cancelled')
return 'ok'
