-- promote: SCHEDULED -> QUEUED for jobs whose run_at has come (bounded per call).
-- KEYS[1] job key prefix   KEYS[2] scheduled   KEYS[3] queued   KEYS[4] seq counter
-- KEYS[5] wake marker
-- ARGV[1] limit
-- Returns the number of jobs promoted.
local n = promote(KEYS[1], KEYS[2], KEYS[3], KEYS[4], now_ms(), tonumber(ARGV[1]))
if n > 0 then wake(KEYS[5]) end
return n
