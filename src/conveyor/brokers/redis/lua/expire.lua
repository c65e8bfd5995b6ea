-- expire: retention. Delete SUCCEEDED / CANCELLED jobs finished before now - retention_ms and
-- DEAD jobs finished before now - dlq_retention_ms (bounded per call).
-- KEYS[1] job key prefix   KEYS[2] succeeded   KEYS[3] cancelled   KEYS[4] dead
-- KEYS[5] idempotency key prefix   KEYS[6] listing (all jobs by id)   KEYS[7] deaths
-- KEYS[8] series key prefix (`<prefix>:{q}:series:`)
-- ARGV[1] retention_ms   ARGV[2] dlq_retention_ms   ARGV[3] limit   ARGV[4] series hours
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

-- Series roll-up (issue 18): each hour hash (`count_series` in _lib.lua) that ended before
-- the last day's first minute (base.last_rollable_hour) becomes one point per hour: its
-- counts summed per kind and type onto the hour's first minute's fields, in a new compact
-- hash with the same expiry. From the cursor `<series>rolled` (the last hour looked at) on,
-- at most ARGV[4] hours rewritten per call (and at most 8 days of hours looked at: an empty
-- or rolled hour is one lookup). One script: a second caller finds the cursor moved, and an
-- hour already rolled is left as it is, so nothing is counted twice.
local minute = math.floor(now / 60000)
local upto = math.floor((minute - 1439) / 60) - 1
local cursor_key = KEYS[8] .. 'rolled'
local from = tonumber(redis.call('GET', cursor_key) or '')
if not from or from < upto - 24 * 8 then from = upto - 24 * 8 end
local budget = tonumber(ARGV[4])
local hour = from
while hour < upto and budget > 0 do
  hour = hour + 1
  local key = KEYS[8] .. int(hour)
  local flat = redis.call('HGETALL', key)
  local first = int(hour * 60)
  local sums, order, moved = {}, {}, false
  for i = 1, #flat, 2 do
    local at, rest = string.match(flat[i], '^(%d+)(:.*)$')
    local n = tonumber(flat[i + 1])
    if at ~= first then moved = true end
    if rest and n then
      if not sums[rest] then sums[rest] = 0 order[#order + 1] = rest end
      sums[rest] = sums[rest] + n
    end
  end
  if moved then
    budget = budget - 1
    local args = {'HSET', key}
    for _, rest in ipairs(order) do
      args[#args + 1] = first .. rest
      args[#args + 1] = int(sums[rest])
    end
    redis.call('DEL', key)
    if #order > 0 then
      redis.call(unpack(args))
      redis.call('PEXPIREAT', key, int((hour + 1) * 3600000 + SERIES_KEEP_MS))
    end
  end
end
if hour > from then
  redis.call('SET', cursor_key, int(hour), 'PX', SERIES_KEEP_MS + 86400000)
end
return deleted
