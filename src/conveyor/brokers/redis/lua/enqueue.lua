-- enqueue: store new jobs as QUEUED (due now) or SCHEDULED (due later), atomically per batch.
-- KEYS[1] job key prefix  cv:{q}:job:
-- KEYS[2] idempotency key prefix  cv:{q}:idem:
-- KEYS[3] queued zset   KEYS[4] scheduled zset   KEYS[5] seq counter   KEYS[6] wake marker
-- KEYS[7] listing: every job of the queue, score 0, so ZREVRANGEBYLEX lists newest first
-- ARGV[1] a JSON array with one array per job (one argument: cheap to pack and to send):
--   [uid, type, payload (JSON text), priority, max_attempts, timeout_ms ('' none),
--    delay_ms (-1 none), run_at_ms (-1 none), idempotency key ('' none), fingerprint,
--    trace context ('' none), limit key ('' none; flow control)]
-- Returns {now_ms, {...}, fresh} with one entry per job: its run_at_ms (a number) when created
-- (the job is SCHEDULED when run_at > now, else QUEUED), or {uid, fingerprint, state,
-- created_ms, run_at_ms} of the live job that already holds the idempotency key (or of this
-- same uid, when a retried call sends a job that the first call stored). `fresh` is 1 when
-- the queue's seq counter did not exist (a new queue, or one forget_queue emptied) or a job
-- was sent again (a retried call: the first one's registry add may be lost): only then does
-- the caller add the queue to the registry (after this call, see remember_queues).
-- Fields that start empty (attempts, lease, token, idem, fp) are simply not written.
-- Calls per immediate job: TIME, INCRBY and EXISTS limits (once per call), EXISTS, HSET, 2
-- ZADD, XADD, LLEN (and LPUSH when the marker was empty); the scheduled index is read only
-- for a scheduled job. A queue with limits (flow control) gets its QUEUED jobs into their key
-- lanes instead of `queued` (KEYS[3]): one ZADD per key, HGET vt, ZMSCORE ready (and
-- blocked) and HINCRBY n per call, and a key that gets work again is activated.
local now = now_ms()
local jobs = cjson.decode(ARGV[1])
local last_seq, fresh = take_seqs(KEYS[5], #jobs)
if not last_seq then return fresh end
local seq = last_seq - #jobs
-- flow control: a queue with limits gets its new QUEUED jobs straight into their key lanes
-- (what a limited fetch's drain would do with them; one EXISTS for any other queue)
local flow_base = string.sub(KEYS[1], 1, -5)
local laned = nil
if redis.call('EXISTS', flow_base .. 'limits') == 1 then
  laned = {adds = {}, order = {}, best = {}, n = 0}
end
local out = {}
local woke = false
local earliest = nil -- the scheduled index's first score (-1: empty), read when needed
local snow = int(now)
for _, j in ipairs(jobs) do
  local uid, prio, delay, runat, idem = j[1], j[4], tonumber(j[7]), tonumber(j[8]), j[9]
  local existing = nil
  if redis.call('EXISTS', KEYS[1] .. uid) == 1 then
    existing = uid -- this very job, sent again (a retried call whose reply was lost)
    fresh = true -- and the registry add after the first call may have been lost with it
  elseif idem ~= '' then
    local ik = KEYS[2] .. idem
    local cur = redis.call('GET', ik)
    if cur and redis.call('EXISTS', KEYS[1] .. cur) == 1 then
      existing = cur
    else
      redis.call('SET', ik, uid)
    end
  end
  if existing then
    local v = redis.call('HMGET', KEYS[1] .. existing, 'fp', 'state', 'created', 'run_at')
    out[#out + 1] = {existing, v[1] or '', v[2] or '', v[3] or '', v[4] or ''}
  else
    local due = now
    if delay >= 0 then due = now + delay elseif runat >= 0 then due = runat end
    seq = seq + 1
    local state = 'queued'
    if due > now then state = 'scheduled' end
    local jk = KEYS[1] .. uid
    local fields = {'type', j[2], 'payload', j[3], 'prio', prio, 'max_att', j[5],
      'created', snow, 'run_at', int(due), 'seq', seq, 'state', state}
    if j[6] ~= '' then fields[#fields + 1] = 'timeout' fields[#fields + 1] = j[6] end
    if idem ~= '' then
      fields[#fields + 1] = 'idem' fields[#fields + 1] = idem
      fields[#fields + 1] = 'fp' fields[#fields + 1] = j[10]
    end
    if type(j[11]) == 'string' and j[11] ~= '' then
      fields[#fields + 1] = 'trace' fields[#fields + 1] = j[11]
    end
    if type(j[12]) == 'string' and j[12] ~= '' then
      fields[#fields + 1] = 'limit_key' fields[#fields + 1] = j[12]
    end
    redis.call('HSET', jk, unpack(fields))
    redis.call('ZADD', KEYS[7], 0, uid)
    if state == 'scheduled' then
      redis.call('ZADD', KEYS[4], due, uid)
      if earliest == nil then
        local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
        earliest = tonumber(first[2] or '-1')
        if first[1] == uid then earliest = -1 end -- only this job: the index was empty
      end
      if earliest < 0 or due < earliest then
        earliest = due
        woke = true -- sleeping workers recompute how long to wait
      end
    elseif laned then
      local key = type(j[12]) == 'string' and j[12] or ''
      flow_lane_note(laned.adds, laned.order, laned.best, key, queued_score(prio, seq), uid)
      laned.n = laned.n + 1
      woke = true
    else
      redis.call('ZADD', KEYS[3], queued_score(prio, seq), uid)
      woke = true
    end
    emit(KEYS[1], uid, state == 'scheduled' and 'scheduled' or 'enqueued', j[2], state, '0')
    out[#out + 1] = due
  end
end
if laned and laned.n > 0 then
  local F = flow_names(flow_base)
  F.vt = tonumber(redis.call('HGET', F.lim, 'vt')) or 0
  flow_lanes_add(F, laned.adds, laned.order, laned.best)
  redis.call('HINCRBY', F.lim, 'n', laned.n)
end
if woke then wake(KEYS[6]) end
return {snow, out, fresh and 1 or 0}
