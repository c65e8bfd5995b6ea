-- promote: SCHEDULED -> QUEUED for jobs whose run_at has come (bounded per call); a record
-- that does not parse is set aside as DEAD corrupt_job instead.
-- KEYS[1] job key prefix   KEYS[2] scheduled   KEYS[3] queued   KEYS[4] seq counter
-- KEYS[5] wake marker   KEYS[6] dead   KEYS[7] deaths
-- ARGV[1] limit
-- Returns the number of jobs promoted.
local now = now_ms()
local bad_seq = check_seq(KEYS[4])
if bad_seq then return bad_seq end
local function set_aside(jk, uid, problem)
  set_corrupt(jk, uid, nil, KEYS[6], KEYS[7], now, problem)
end
local n = promote(KEYS[1], KEYS[2], KEYS[3], KEYS[4], now, tonumber(ARGV[1]), set_aside)
if n > 0 then wake(KEYS[5]) end
return n
