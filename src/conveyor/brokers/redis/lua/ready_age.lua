-- ready_age: reads only. When the job that has waited longest for a worker became due (its
-- run_at): the autoscaling signal (`oldest_ready_age_s`).
-- KEYS[1] job key prefix   KEYS[2] queued   KEYS[3] scheduled
-- Looks at a bounded number of jobs, whatever the queue's size: in each ordered set of QUEUED
-- jobs it reads, the next one delivered (its head) and the first of the lowest priority
-- waiting (the most starved); and the earliest SCHEDULED job whose time has passed (due, not
-- yet promoted). Exact while jobs of at most two priorities wait.
-- A queue with limits (flow control, _flow.lua) also keeps QUEUED jobs in key lanes
-- (`lane:<key>`, derived from the job prefix as fetch does): the no-key lane and the lanes
-- of the first and last LANE_LOOK keys of `ready` (next served) and `blocked` (soonest and
-- longest held back) are read the same way, so the cost stays bounded; exact while at most
-- LANE_LOOK keys have work in each of those places.
-- Returns {now_ms, due ms of the oldest ready job (-1: none waits)}
local LANE_LOOK = 8
local now = now_ms()
local oldest = -1
local function due_of(uid)
  if not uid then return end
  local due = tonumber(redis.call('HGET', KEYS[1] .. uid, 'run_at'))
  if due and (oldest < 0 or due < oldest) then oldest = due end
end
-- the head of a zset of QUEUED jobs (queued score) and the first of its lowest priority
local function look(zset)
  local head = redis.call('ZRANGE', zset, 0, 0)
  due_of(head[1])
  local tail = redis.call('ZRANGE', zset, -1, -1, 'WITHSCORES')
  if tail[1] and tail[1] ~= head[1] then
    local band = math.floor(tonumber(tail[2]) / 4398046511104) * 4398046511104
    local first = redis.call('ZRANGEBYSCORE', zset, string.format('%.0f', band), '+inf',
      'LIMIT', 0, 1)
    due_of(first[1])
  end
end
look(KEYS[2])
local base = string.sub(KEYS[1], 1, -5)
if redis.call('EXISTS', base .. 'limits') == 1 then
  local seen = {}
  local function lane(key)
    if seen[key] then return end
    seen[key] = true
    look(base .. 'lane:' .. key)
  end
  lane('')
  for _, set in ipairs({base .. 'ready', base .. 'blocked'}) do
    for _, range in ipairs({{0, LANE_LOOK - 1}, {-LANE_LOOK, -1}}) do
      for _, key in ipairs(redis.call('ZRANGE', set, range[1], range[2])) do lane(key) end
    end
  end
end
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'WITHSCORES', 'LIMIT', 0, 1)
if due[2] then
  local at = tonumber(due[2])
  if oldest < 0 or at < oldest then oldest = at end
end
return {int(now), int(oldest)}
