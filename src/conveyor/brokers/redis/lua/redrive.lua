-- redrive: DEAD -> QUEUED in place (DLQ redrive), for the given uids or the oldest dead jobs,
-- each only if it is DEAD and matches the selector. Attempts start again at 0, the redrive
-- counter goes up by one (DLQ policies are bounded by it), and the history records who or
-- what redrove the job and when; earlier attempts are kept.
-- KEYS[1] job key prefix   KEYS[2] dead   KEYS[3] queued   KEYS[4] seq counter
-- KEYS[5] wake marker
-- ARGV[1] actor   ARGV[2] selector (JSON object, see dead_match in _lib.lua)
-- ARGV[3] '1': dry run (change nothing)
-- ARGV[4] '*' with ARGV[5] a limit (the oldest dead jobs of the selector's range), or uids
-- Returns the uids moved (dry run: that would move). A record that does not parse is left
-- dead and not returned (see job_problem).
local now = now_ms()
local bad_seq = check_seq(KEYS[4])
if bad_seq then return bad_seq end
local sel = cjson.decode(ARGV[2])
local dry = ARGV[3] == '1'
local out = {}
for _, uid in ipairs(pick_dead(KEYS[2], sel, ARGV, 4)) do
  local jk = KEYS[1] .. uid
  local j = dead_match(jk, sel) and read_job(jk, {'state', 'prio'})
  if j and not job_problem(j, 'dead', {'prio'}) then
    if not dry then
      redis.call('ZREM', KEYS[2], uid)
      local seq = redis.call('INCR', KEYS[4])
      redis.call('HSET', jk, 'attempts', '0', 'seq', seq, 'run_at', int(now), 'finished', '',
        'token', '')
      redis.call('HINCRBY', jk, 'redrives', 1)
      to_queued(jk, KEYS[3], uid, seq, j.prio)
      add_history(jk, 0, ARGV[1], nil, now, 'redriven', nil,
        'redriven from the DLQ by ' .. ARGV[1], nil)
      emit_event(jk, 'redriven', nil)
    end
    out[#out + 1] = uid
  end
end
if #out > 0 and not dry then wake(KEYS[5]) end
return out
