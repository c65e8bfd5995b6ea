-- heartbeat: extend the leases of RUNNING jobs held with the current token.
-- KEYS[1] job key prefix   KEYS[2] running zset
-- ARGV[1] lease_ms   ARGV[2] JSON array of [uid, token]
-- Returns {lost, cancels}: the uids whose lease was lost (stale token or no longer RUNNING),
-- and [uid, actor, ...] of held jobs with a cancel request for this very delivery (cancel.lua)
local now = now_ms()
local deadline = int(now + tonumber(ARGV[1]))
local lost, cancels = {}, {}
for _, l in ipairs(cjson.decode(ARGV[2])) do
  local uid, token = l[1], l[2]
  local jk = KEYS[1] .. uid
  local j = read_job(jk, {'state', 'token', 'ctok', 'cby'})
  if holds(j, token) then
    redis.call('HSET', jk, 'deadline', deadline)
    redis.call('ZADD', KEYS[2], deadline, uid)
    if j.ctok == token then cancels[#cancels + 1] = uid cancels[#cancels + 1] = j.cby or '' end
  else
    lost[#lost + 1] = uid
  end
end
return {lost, cancels}
