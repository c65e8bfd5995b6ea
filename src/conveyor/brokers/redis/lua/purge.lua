-- purge: delete DEAD jobs (DLQ purge), by uid or the oldest `limit`.
-- KEYS[1] job key prefix   KEYS[2] dead   KEYS[3] idempotency key prefix   KEYS[4] listing
-- ARGV[1] '*' with ARGV[2] a limit, or the uids to delete
-- Returns the uids deleted.
local ids = {}
if ARGV[1] == '*' then
  ids = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[2]) - 1)
else
  for i = 1, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local out = {}
for _, uid in ipairs(ids) do
  local jk = KEYS[1] .. uid
  if redis.call('HGET', jk, 'state') == 'dead' then
    redis.call('ZREM', KEYS[2], uid)
    delete_job(jk, KEYS[3], KEYS[4], uid)
    out[#out + 1] = uid
  end
end
return out
