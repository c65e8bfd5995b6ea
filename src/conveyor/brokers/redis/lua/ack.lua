-- ack: RUNNING -> SUCCEEDED, only for the lease holder (a stale worker's late ack changes nothing).
-- KEYS[1] job key prefix   KEYS[2] running zset   KEYS[3] succeeded zset   KEYS[4] dead
-- KEYS[5] deaths
-- ARGV[1] JSON array of [uid, token, result (JSON text), preview ('': the result is short
--   enough to be its own), result size (characters)]: listings read `rprev`, not `result`
-- Returns one integer per job: 1 acked (now, or before by this same lease), 0 rejected (lease
-- lost, or a record that does not parse, set aside as DEAD corrupt_job).
local now = now_ms()
local out = {}
-- flow control: the permits this call gives back, counted once at its end (flow_batch_end)
local permits = flow_batch(string.sub(KEYS[1], 1, -5))
local READS = {'state', 'token', 'attempts', 'worker', 'started', 'type', 'permit', 'limit_key'}
local CHECKS = {'attempts'}
for _, a in ipairs(cjson.decode(ARGV[1])) do
  local uid, token, result, preview = a[1], a[2], a[3], a[4]
  if preview == '' then preview = result end
  local jk = KEYS[1] .. uid
  local j = read_job(jk, READS)
  if holds(j, token) then
    local problem = job_problem(j, 'running', CHECKS)
    if problem then
      set_corrupt(jk, uid, KEYS[2], KEYS[4], KEYS[5], now, problem)
      out[#out + 1] = 0
    else
      redis.call('ZREM', KEYS[2], uid)
      redis.call('ZADD', KEYS[3], now, uid)
      -- the token stays: a resent ack (its first reply lost) is recognised below
      -- no history line: the succeeding attempt's line is implied by the record (attempts,
      -- worker, started, finished; records.py adds it on read), so a retained job's hash
      -- stays a listpack (a line is ~170 bytes, over hash-max-listpack-value)
      local set = {'HSET', jk, 'state', 'succeeded', 'finished', int(now), 'result', result,
        'rprev', preview, 'rsize', int(a[5])}
      -- a permit held: given back at the end of the call, its field cleared right here
      if flow_batch_take(permits, j.permit, j.limit_key) then
        set[#set + 1] = 'permit'
        set[#set + 1] = ''
      end
      redis.call(unpack(set))
      emit(KEYS[1], uid, 'succeeded', j.type, 'succeeded', j.attempts)
      count_series(KEYS[1], jk, now, 's', j.type or '')
      out[#out + 1] = 1
    end
  elseif j.state == 'succeeded' and j.token == token then
    out[#out + 1] = 1 -- already acked by this very lease
  else
    out[#out + 1] = 0
  end
end
flow_batch_end(permits, now)
return out
