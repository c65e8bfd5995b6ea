-- heartbeat: extend the leases of RUNNING jobs held with the current token.
-- KEYS[1] job key prefix   KEYS[2] running zset
-- ARGV[1] lease_ms, then pairs: ulid, token
-- Returns the ulids whose lease was lost (stale token or no longer RUNNING).
local now = now_ms()
local deadline = int(now + tonumber(ARGV[1]))
local lost = {}
for i = 2, #ARGV, 2 do
  local ulid, token = ARGV[i], ARGV[i + 1]
  local jk = KEYS[1] .. ulid
  if holds_lease(jk, token) then
    redis.call('HSET', jk, 'deadline', deadline)
    redis.call('ZADD', KEYS[2], deadline, ulid)
  else
    lost[#lost + 1] = ulid
  end
end
return lost
