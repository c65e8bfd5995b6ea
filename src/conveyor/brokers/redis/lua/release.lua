-- release: RUNNING -> QUEUED without charging the attempt (graceful shutdown), lease holder only.
-- KEYS[1] job key prefix   KEYS[2] running   KEYS[3] queued   KEYS[4] wake marker
-- ARGV: pairs ulid, token
-- Returns one integer per job: 1 released, 0 rejected (lease lost).
-- The job keeps its old seq, so it goes back to its old place, ahead of newer jobs.
local now = now_ms()
local out = {}
for i = 1, #ARGV, 2 do
  local ulid, token = ARGV[i], ARGV[i + 1]
  local jk = KEYS[1] .. ulid
  if holds_lease(jk, token) then
    local v = redis.call('HMGET', jk, 'attempts', 'worker', 'started', 'seq')
    redis.call('ZREM', KEYS[2], ulid)
    redis.call('HINCRBY', jk, 'attempts', -1)
    redis.call('HSET', jk, 'token', '')
    to_queued(jk, KEYS[3], ulid, v[4])
    add_history(jk, v[1], v[2], v[3], now, 'released', 'worker_shutdown',
      'released by a stopping worker; attempt not charged', nil)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if #out > 0 then wake(KEYS[4]) end
return out
