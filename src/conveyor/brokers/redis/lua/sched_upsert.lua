-- sched_upsert: create or replace one schedule, in its target queue's slot.
-- KEYS[1] the schedule's hash  cv:{q}:sched:<name>   KEYS[2] due zset  cv:{q}:sched_due
-- ARGV[1] name  ARGV[2] definition (canonical JSON, paused left out)  ARGV[3] resolved job
-- template (JSON)  ARGV[4] fingerprint  ARGV[5] timing fingerprint  ARGV[6] overlap
-- ARGV[7] paused: '1' | '0' | '' (keep the stored state)
-- ARGV[8] the first tick after now (-1: none), stored when the schedule is new, retimed or
-- resumed  ARGV[9] lookahead ms (due score = next - lookahead; overlap 'skip': next)
-- Outcomes: 'created' | 'replaced' | 'same' (identical definition and paused state: nothing
-- is written, not even the next tick)
local now = int(now_ms())
local sk, name, want = KEYS[1], ARGV[1], ARGV[7]
local cur = redis.call('HMGET', sk, 'fp', 'tfp', 'paused', 'next')

-- the due entry of the stored next tick ('' none), paused state and overlap
local function place(nxt, paused, overlap)
  local n = as_int(nxt, 0, 9e15)
  if paused == '1' or not n then
    redis.call('ZREM', KEYS[2], name)
  else
    if overlap ~= 'skip' then n = n - tonumber(ARGV[9]) end
    redis.call('ZADD', KEYS[2], n, name)
  end
end

local fresh = ARGV[8]
if fresh == '-1' then fresh = '' end
if not cur[1] then
  local paused = '0'
  if want == '1' or (want == '' and ARGV[10] == '1') then paused = '1' end
  redis.call('HSET', sk, 'def', ARGV[2], 'job', ARGV[3], 'fp', ARGV[4], 'tfp', ARGV[5],
    'overlap', ARGV[6], 'paused', paused, 'next', fresh, 'created', now, 'updated', now,
    'fired', 0, 'skipped', 0, 'missed', 0)
  place(fresh, paused, ARGV[6])
  return 'created'
end
local was = '0'
if cur[3] == '1' then was = '1' end
local paused = was
if want ~= '' then paused = want end
if cur[1] == ARGV[4] and paused == was then return 'same' end
local nxt = cur[4] or ''
if cur[2] ~= ARGV[5] or (was == '1' and paused == '0') or not as_int(nxt, 0, 9e15) then
  nxt = fresh -- a new timing, or a resume: ticks count from now
end
redis.call('HSET', sk, 'def', ARGV[2], 'job', ARGV[3], 'fp', ARGV[4], 'tfp', ARGV[5],
  'overlap', ARGV[6], 'paused', paused, 'next', nxt, 'updated', now)
place(nxt, paused, ARGV[6])
return 'replaced'
