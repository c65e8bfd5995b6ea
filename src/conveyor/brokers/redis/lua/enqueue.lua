-- enqueue: store new jobs as QUEUED (due now) or SCHEDULED (due later), atomically per batch.
-- KEYS[1] job key prefix  cv:{q}:job:
-- KEYS[2] idempotency key prefix  cv:{q}:idem:
-- KEYS[3] queued zset   KEYS[4] scheduled zset   KEYS[5] seq counter   KEYS[6] wake marker
-- KEYS[7] listing: every job of the queue, score 0, so ZREVRANGEBYLEX lists newest first
-- ARGV[1] a JSON array with one array per job (one argument: cheap to pack and to send):
--   [uid, type, payload (JSON text), priority, max_attempts, timeout_ms ('' none),
--    delay_ms (-1 none), run_at_ms (-1 none), idempotency key ('' none), fingerprint,
--    trace context ('' none), limit key ('' none; flow control)]
-- Returns {now_ms, {...}} with one entry per job: its run_at_ms (a number) when created (the
-- job is SCHEDULED when run_at > now, else QUEUED), or {uid, fingerprint, state, created_ms,
-- run_at_ms} of the live job that already holds the idempotency key (or of this same uid,
-- when a retried call sends a job that the first call stored).
-- Fields that start empty (attempts, lease, token, idem, fp) are simply not written.
local now = now_ms()
local bad_seq = check_seq(KEYS[5])
if bad_seq then return bad_seq end
local jobs = cjson.decode(ARGV[1])
local out = {}
local woke = false
local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
local earliest = tonumber(first[2] or '-1')
local snow = int(now)
for _, j in ipairs(jobs) do
  local uid, prio, delay, runat, idem = j[1], j[4], tonumber(j[7]), tonumber(j[8]), j[9]
  local existing = nil
  if redis.call('EXISTS', KEYS[1] .. uid) == 1 then
    existing = uid -- this very job, sent again (a retried call whose reply was lost)
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
    local seq = redis.call('INCR', KEYS[5])
    local state = 'queued'
    if due > now then state = 'scheduled' end
    local jk = KEYS[1] .. uid
    local sdue = int(due)
    redis.call('HSET', jk, 'type', j[2], 'payload', j[3], 'prio', prio, 'max_att', j[5],
      'created', snow, 'run_at', sdue, 'seq', seq, 'state', state)
    redis.call('ZADD', KEYS[7], 0, uid)
    if j[6] ~= '' then redis.call('HSET', jk, 'timeout', j[6]) end
    if idem ~= '' then redis.call('HSET', jk, 'idem', idem, 'fp', j[10]) end
    if type(j[11]) == 'string' and j[11] ~= '' then redis.call('HSET', jk, 'trace', j[11]) end
    if type(j[12]) == 'string' and j[12] ~= '' then redis.call('HSET', jk, 'limit_key', j[12]) end
    if state == 'scheduled' then
      redis.call('ZADD', KEYS[4], due, uid)
      if earliest < 0 or due < earliest then
        earliest = due
        woke = true -- sleeping workers recompute how long to wait
      end
    else
      redis.call('ZADD', KEYS[3], queued_score(prio, seq), uid)
      woke = true
    end
    emit(KEYS[1], uid, state == 'scheduled' and 'scheduled' or 'enqueued', j[2], state, '0')
    out[#out + 1] = due
  end
end
if woke then wake(KEYS[6]) end
return {snow, out}
