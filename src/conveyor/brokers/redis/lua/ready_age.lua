-- ready_age: reads only. When the job that has waited longest for a worker became due (its
-- run_at): the autoscaling signal (`oldest_ready_age_s`).
-- KEYS[1] job key prefix   KEYS[2] queued   KEYS[3] scheduled
-- Looks at three jobs, whatever the queue's size: the next one delivered (head of queued), the
-- first of the lowest priority waiting (the most starved), and the earliest SCHEDULED job whose
-- time has passed (due, not yet promoted). Exact while jobs of at most two priorities wait.
-- Returns {now_ms, due ms of the oldest ready job (-1: none waits)}
local now = now_ms()
local oldest = -1
local function due_of(uid)
  if not uid then return end
  local due = tonumber(redis.call('HGET', KEYS[1] .. uid, 'run_at'))
  if due and (oldest < 0 or due < oldest) then oldest = due end
end
local head = redis.call('ZRANGE', KEYS[2], 0, 0)
due_of(head[1])
local tail = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if tail[1] and tail[1] ~= head[1] then
  local band = math.floor(tonumber(tail[2]) / 4398046511104) * 4398046511104
  local first = redis.call('ZRANGEBYSCORE', KEYS[2], string.format('%.0f', band), '+inf',
    'LIMIT', 0, 1)
  due_of(first[1])
end
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'WITHSCORES', 'LIMIT', 0, 1)
if due[2] then
  local at = tonumber(due[2])
  if oldest < 0 or at < oldest then oldest = at end
end
return {int(now), int(oldest)}
