-- claim_deaths: hand out unhandled deaths (for the on_dead hooks) under a claim lease. A
-- claimed event's score becomes now + lease_ms: it is handed out again only if nobody acks
-- it by then (the claimer crashed mid-hook), which makes the hooks at-least-once.
-- KEYS[1] job key prefix   KEYS[2] deaths
-- ARGV[1] limit   ARGV[2] lease_ms
-- Returns {{'<uid>:<n>', type ('' when the job is gone)}...}
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local until_ms = int(now + tonumber(ARGV[2]))
local out = {}
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[2], until_ms, member)
  local uid = string.match(member, '^(.*):%d+$') or member
  out[#out + 1] = {member, redis.call('HGET', KEYS[1] .. uid, 'type') or ''}
end
return out
