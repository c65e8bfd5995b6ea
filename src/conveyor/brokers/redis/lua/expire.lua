-- expire: retention. Delete SUCCEEDED / CANCELLED jobs finished before now - retention_ms and
-- DEAD jobs finished before now - dlq_retention_ms (bounded per call).
-- KEYS[1] job key prefix   KEYS[2] succeeded   KEYS[3] cancelled   KEYS[4] dead
-- KEYS[5] idempotency key prefix   KEYS[6] listing (all jobs by id)   KEYS[7] deaths
-- ARGV[1] retention_ms   ARGV[2] dlq_retention_ms   ARGV[3] limit
-- Death events go with their job, and events older than the DLQ retention (of jobs already
-- gone) are dropped too.
-- Returns the number of jobs deleted.
local now = now_ms()
local limit = tonumber(ARGV[3])
local deleted = 0
local function sweep(index, retention)
  local old = redis.call('ZRANGEBYSCORE', index, '-inf', now - retention, 'LIMIT', 0, limit)
  for _, uid in ipairs(old) do
    redis.call('ZREM', index, uid)
    forget_death(KEYS[7], KEYS[1] .. uid, uid)
    delete_job(KEYS[1] .. uid, KEYS[5], KEYS[6], uid)
  end
  deleted = deleted + #old
end
sweep(KEYS[2], tonumber(ARGV[1]))
sweep(KEYS[3], tonumber(ARGV[1]))
sweep(KEYS[4], tonumber(ARGV[2]))
local stale = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', now - tonumber(ARGV[2]), 'LIMIT', 0,
  limit)
for _, member in ipairs(stale) do redis.call('ZREM', KEYS[7], member) end
return deleted
