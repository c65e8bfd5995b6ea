-- fetch: promote due jobs, then lease up to `count` QUEUED jobs (QUEUED -> RUNNING).
-- KEYS[1] job key prefix   KEYS[2] queued   KEYS[3] scheduled   KEYS[4] running
-- KEYS[5] seq counter      KEYS[6] wake marker   KEYS[7] paused flag   KEYS[8] dead
-- KEYS[9] deaths   KEYS[10] (optional) the ticket of a pipelined wait-and-fetch
-- ARGV[1] count   ARGV[2] lease_ms   ARGV[3] worker id   ARGV[4] promote limit
-- ARGV[5] lease nonce: 128 random bits made by the caller; the i-th job leased gets the token
--   '<nonce>.<i>', never a counter a lost write could roll back (invariant 3)
-- A record that does not parse (promoted or popped) is set aside as DEAD corrupt_job and the
-- rest of the batch goes on (see job_problem in _lib.lua).
-- A queue with limits leases through _flow.lua (flow control): next_due_ms is then also the
-- earliest moment a job held back by a limit may start.
-- Returns {now_ms, next_due_ms (-1 none), {uid, token, type, payload, attempts, max_att, timeout,
--   run_at, trace context}..., number of records set aside}
local now = now_ms()
if redis.call('EXISTS', KEYS[7]) == 1 then
  return {int(now), next_due(KEYS[3]), {}, 0}
end
local bad_seq = check_seq(KEYS[5])
if bad_seq then return bad_seq end
if KEYS[10] then -- behind a BLPOP (transitions.wait_and_fetch): lease only on an armed ticket
  local ticket = redis.call('GET', KEYS[10])
  if ticket then redis.call('DEL', KEYS[10]) end
  -- revoked (the worker is stopping, or saw the broker unsafe) or expired: count 0, which
  -- still promotes due jobs and passes the wake-up on
  if ticket ~= 'armed' then ARGV[1] = '0' end
end
local READS = {'state', 'type', 'payload', 'attempts', 'max_att', 'timeout', 'run_at', 'trace'}
local CHECKS = {'type', 'payload', 'attempts', 'max_att', 'timeout'}
local function set_aside(jk, uid, problem)
  set_corrupt(jk, uid, nil, KEYS[8], KEYS[9], now, problem)
end
local _, aside = promote(KEYS[1], KEYS[3], KEYS[2], KEYS[5], now, tonumber(ARGV[4]), set_aside)
local deadline = int(now + tonumber(ARGV[2]))
-- lease one popped job into `out` (true), or set its record aside / skip a vanished one
-- (false); `permit` marks a flow-control permit taken for it (nil: none)
local function lease_one(uid, out, permit)
  local jk = KEYS[1] .. uid
  local j = read_job(jk, READS)
  local problem = j.state and job_problem(j, 'queued', CHECKS)
  if problem then
    set_aside(jk, uid, problem)
    aside = aside + 1
    return false
  elseif not j.state then
    return false
  end
  local token = ARGV[5] .. '.' .. (#out + 1)
  local attempts = (as_int(j.attempts, 0, 1e9) or 0) + 1
  local set = {'HSET', jk, 'state', 'running', 'token', token, 'started', int(now),
    'worker', ARGV[3], 'deadline', deadline, 'attempts', attempts}
  if permit then set[#set + 1] = 'permit' set[#set + 1] = permit end
  redis.call(unpack(set))
  redis.call('ZADD', KEYS[4], deadline, uid)
  emit(KEYS[1], uid, 'started', j.type, 'running', attempts)
  local timeout = j.timeout
  if timeout == '' then timeout = false end
  out[#out + 1] = {uid, token, j.type, j.payload, attempts, j.max_att, timeout,
    j.run_at or false, j.trace or false}
  return true
end
-- flow control: a queue with limits (or work left in its key lanes) leases through _flow.lua;
-- any other queue pays one EXISTS
local flow_base = string.sub(KEYS[1], 1, -5)
if redis.call('EXISTS', flow_base .. 'limits') == 1 then
  local F = flow_state(flow_base)
  F.permit = 'p'
  if F.c then F.permit = 'q' end -- a permit given back may free the queue's concurrency
  flow_drain(F, KEYS[2], KEYS[1], tonumber(ARGV[4]))
  local fout = {}
  local function lease(uid)
    return lease_one(uid, fout, F.permit)
  end
  local count = tonumber(ARGV[1])
  local gated, gate_at = flow_serve(F, now, count, fout, lease)
  local wake_at = flow_finish(F, now, count, fout, gated, gate_at, KEYS[2], KEYS[3], KEYS[6])
  return {int(now), wake_at, fout, aside}
end
local count = tonumber(ARGV[1])
local popped = redis.call('ZPOPMIN', KEYS[2], count)
local out = {}
for i = 1, #popped, 2 do
  lease_one(popped[i], out, nil)
end
-- fewer popped than asked: the queue is empty, no ZCARD needed (the common idle case)
if #popped >= 2 * count and redis.call('ZCARD', KEYS[2]) > 0 then
  -- work left: pass the baton to another idle worker (a full worker that was woken calls
  -- fetch with count 0 just for this)
  wake(KEYS[6])
end
return {int(now), next_due(KEYS[3]), out, aside}
