-- enqueue: store new jobs as QUEUED (due now) or SCHEDULED (due later), atomically per batch.
-- KEYS[1] job key prefix  cv:{q}:job:
-- KEYS[2] idempotency key prefix  cv:{q}:idem:
-- KEYS[3] queued zset   KEYS[4] scheduled zset   KEYS[5] seq counter   KEYS[6] wake marker
-- ARGV[1] number of jobs, then 10 fields per job:
--   ulid, type, payload (JSON), priority, max_attempts, timeout_ms (-1 none),
--   delay_ms (-1 none), run_at_ms (-1 none), idempotency key ('' none), fingerprint
-- Returns {now_ms, {status, ulid, fingerprint, state, created_ms, run_at_ms}...}
--   status 1 = created, 0 = an existing live job with that idempotency key was returned.
local now = now_ms()
local n = tonumber(ARGV[1])
local out = {}
local woke = false
local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
local earliest = tonumber(first[2] or '-1')
for i = 0, n - 1 do
  local b = 1 + i * 10
  local ulid, jtype, payload, prio = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local maxatt, timeout, delay, runat = ARGV[b + 5], ARGV[b + 6], tonumber(ARGV[b + 7]), tonumber(ARGV[b + 8])
  local idem, fp = ARGV[b + 9], ARGV[b + 10]
  local existing = nil
  if idem ~= '' then
    local ik = KEYS[2] .. idem
    local cur = redis.call('GET', ik)
    if cur and redis.call('EXISTS', KEYS[1] .. cur) == 1 then
      existing = cur
    else
      redis.call('SET', ik, ulid)
    end
  end
  if existing then
    local v = redis.call('HMGET', KEYS[1] .. existing, 'fp', 'state', 'created', 'run_at')
    out[#out + 1] = {0, existing, v[1] or '', v[2] or '', v[3] or '', v[4] or ''}
  else
    local due = now
    if delay >= 0 then due = now + delay elseif runat >= 0 then due = runat end
    local seq = redis.call('INCR', KEYS[5])
    local state = 'queued'
    if due > now then state = 'scheduled' end
    local jk = KEYS[1] .. ulid
    redis.call('HSET', jk, 'type', jtype, 'payload', payload, 'prio', prio, 'attempts', '0',
      'max_att', maxatt, 'timeout', timeout, 'created', int(now), 'run_at', int(due),
      'seq', seq, 'state', state, 'idem', idem, 'fp', fp, 'lease', '0')
    if state == 'scheduled' then
      redis.call('ZADD', KEYS[4], due, ulid)
      if earliest < 0 or due < earliest then
        earliest = due
        woke = true -- sleeping workers recompute how long to wait
      end
    else
      redis.call('ZADD', KEYS[3], queued_score(prio, seq), ulid)
      woke = true
    end
    out[#out + 1] = {1, ulid, fp, state, int(now), int(due)}
  end
end
if woke then wake(KEYS[6]) end
return {int(now), out}
