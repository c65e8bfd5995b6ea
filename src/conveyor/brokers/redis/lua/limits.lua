-- limits: set or delete a queue's limits (flow control), keeping its counters (permits out,
-- buckets, holds, fairness clock): a change never forgets a permit.
-- KEYS[1] limits hash   KEYS[2] weights hash   KEYS[3] blocked keys   KEYS[4] wake marker
-- KEYS[5] ready keys
-- ARGV[1] 'set' or 'delete'   ARGV[2] the limits as JSON (QueueLimits; for 'set')
-- ARGV[3..10] c, rn, rp, rb, kc, krn, krp, krb: concurrency, rate count / per ms / burst,
--   the same per key ('' no such limit)   ARGV[11] JSON object key -> weight ('' none)
-- Returns 'ok'. Keys waiting on a permit are looked at again (a raised limit frees them);
-- at most 1,000 per call, the others at their next permit (`infx` says some are left).
local FIELDS = {'c', 'rn', 'rp', 'rb', 'kc', 'krn', 'krp', 'krb'}
local now = now_ms()
redis.call('HDEL', KEYS[1], 'spec', 'hw', unpack(FIELDS))
redis.call('DEL', KEYS[2])
if ARGV[1] == 'set' then
  redis.call('HSET', KEYS[1], 'spec', ARGV[2])
  for i, name in ipairs(FIELDS) do
    if ARGV[i + 2] ~= '' then redis.call('HSET', KEYS[1], name, ARGV[i + 2]) end
  end
  if ARGV[11] ~= '' then
    local pairs_ = {}
    for key, w in pairs(cjson.decode(ARGV[11])) do
      pairs_[#pairs_ + 1] = key
      pairs_[#pairs_ + 1] = int(w)
    end
    if #pairs_ > 0 then
      redis.call('HSET', KEYS[2], unpack(pairs_))
      redis.call('HSET', KEYS[1], 'hw', '1')
    end
  end
end
local waiting = redis.call('ZRANGEBYSCORE', KEYS[3], 'inf', 'inf', 'LIMIT', 0, 1000)
for _, key in ipairs(waiting) do
  redis.call('ZADD', KEYS[3], now, key)
end
-- `infx`: keys may still wait on a permit under the old limits (more than 1,000 were): an
-- ack's give-back then looks at `blocked` for every key, not only for keys at their
-- key_concurrency (flow_batch_end); a later change that frees them all clears it
if #waiting >= 1000 then
  redis.call('HSET', KEYS[1], 'infx', '1')
else
  redis.call('HDEL', KEYS[1], 'infx')
end
local v = redis.call('HMGET', KEYS[1], 'spec', 'n', 'run', 'hold', 'hmax')
if not v[1] and (tonumber(v[2]) or 0) <= 0 and (tonumber(v[3]) or 0) <= 0
    and (tonumber(v[4]) or 0) <= now and (tonumber(v[5]) or 0) <= now
    and redis.call('ZCARD', KEYS[5]) == 0 and redis.call('ZCARD', KEYS[3]) == 0 then
  -- no permit out, no work: the keys' counts and passes go with it (same tag as KEYS[1])
  local base = string.sub(KEYS[1], 1, -7)
  redis.call('DEL', KEYS[1], base .. 'krun', base .. 'kpass', base .. 'kidle')
end
wake(KEYS[4])
return 'ok'
