-- heartbeat: extend the leases of RUNNING jobs held with the current token.
-- KEYS[1] job key prefix   KEYS[2] running zset
-- ARGV[1] lease_ms   ARGV[2] JSON array of [uid, token]
-- Returns the uids whose lease was lost (stale token or no longer RUNNING).
local now = now_ms()
local deadline = int(now + tonumber(ARGV[1]))
local lost = {}
for _, l in ipairs(cjson.decode(ARGV[2])) do
  local uid, token = l[1], l[2]
  local jk = KEYS[1] .. uid
  if holds_lease(jk, token) then
    redis.call('HSET', jk, 'deadline', deadline)
    redis.call('ZADD', KEYS[2], deadline, uid)
  else
    lost[#lost + 1] = uid
  end
end
return lost
