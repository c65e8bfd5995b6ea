-- expire: retention. Delete SUCCEEDED / CANCELLED jobs finished before now - retention_ms and
-- DEAD jobs finished before now - dlq_retention_ms (bounded per call).
-- KEYS[1] job key prefix   KEYS[2] succeeded   KEYS[3] cancelled   KEYS[4] dead
-- KEYS[5] idempotency key prefix   KEYS[6] listing (all jobs by id)
-- ARGV[1] retention_ms   ARGV[2] dlq_retention_ms   ARGV[3] limit
-- Returns the number of jobs deleted.
local now = now_ms()
local limit = tonumber(ARGV[3])
local deleted = 0
local function sweep(index, retention)
  local old = redis.call('ZRANGEBYSCORE', index, '-inf', now - retention, 'LIMIT', 0, limit)
  for _, uid in ipairs(old) do
    redis.call('ZREM', index, uid)
    delete_job(KEYS[1] .. uid, KEYS[5], KEYS[6], uid)
  end
  deleted = deleted + #old
end
sweep(KEYS[2], tonumber(ARGV[1]))
sweep(KEYS[3], tonumber(ARGV[1]))
sweep(KEYS[4], tonumber(ARGV[2]))
return deleted
