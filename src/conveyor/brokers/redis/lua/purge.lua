-- purge: delete DEAD jobs (DLQ purge) that match the selector, by uid or the oldest `limit`.
-- KEYS[1] job key prefix   KEYS[2] dead   KEYS[3] idempotency key prefix   KEYS[4] listing
-- KEYS[5] deaths (a purged job's pending death event goes with it)
-- ARGV[1] selector (JSON object, see dead_match in _lib.lua)   ARGV[2] '1': dry run
-- ARGV[3] '*' with ARGV[4] a limit, or the uids. A uid may read '<uid>=<n>': delete it only
-- while its redrive count is n (the second step of a move to another queue, so a job
-- redriven in place meanwhile is left alone).
-- Returns the uids deleted (dry run: that would be).
local sel = cjson.decode(ARGV[1])
local dry = ARGV[2] == '1'
local out = {}
for _, arg in ipairs(pick_dead(KEYS[2], sel, ARGV, 3)) do
  local uid, want = string.match(arg, '^([^=]+)=(%d+)$')
  if not uid then uid = arg end
  local jk = KEYS[1] .. uid
  if dead_match(jk, sel) and (not want or (redis.call('HGET', jk, 'redrives') or '0') == want) then
    if not dry then
      redis.call('ZREM', KEYS[2], uid)
      forget_death(KEYS[5], jk, uid)
      delete_job(jk, KEYS[3], KEYS[4], uid)
    end
    out[#out + 1] = uid
  end
end
return out
