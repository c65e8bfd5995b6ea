-- release: RUNNING -> QUEUED without charging the attempt (graceful shutdown), lease holder only.
-- KEYS[1] job key prefix   KEYS[2] running   KEYS[3] queued   KEYS[4] wake marker
-- ARGV[1] JSON array of [uid, token]
-- Returns one integer per job: 1 released, 0 rejected (lease lost).
-- The job keeps its old seq, so it goes back to its old place, ahead of newer jobs.
local now = now_ms()
local out = {}
for _, l in ipairs(cjson.decode(ARGV[1])) do
  local uid, token = l[1], l[2]
  local jk = KEYS[1] .. uid
  if holds_lease(jk, token) then
    local v = redis.call('HMGET', jk, 'attempts', 'worker', 'started', 'seq')
    redis.call('ZREM', KEYS[2], uid)
    redis.call('HINCRBY', jk, 'attempts', -1)
    redis.call('HSET', jk, 'token', '')
    to_queued(jk, KEYS[3], uid, v[4])
    add_history(jk, v[1], v[2], v[3], now, 'released', 'worker_shutdown',
      'released by a stopping worker; attempt not charged', nil)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if #out > 0 then wake(KEYS[4]) end
return out
