-- forget_queue: the queue's own half of dropping an empty queue: if no index of the queue holds
-- a job, delete its per-queue bookkeeping keys. One script on the queue's slot, so a job
-- enqueued meanwhile is either seen here (the queue is not empty: refused) or written after.
-- The registry set (`cv:queues`, a slot of its own) is not touched here: the caller removes
-- the name after this script, then looks at the queue once more and puts the name back if a
-- job arrived in between (see RedisQueues.forget).
-- KEYS[1] paused   KEYS[2] wake marker   KEYS[3] seq   KEYS[4] deaths
-- KEYS[5] listing (every job of the queue)
-- KEYS[6..11] the state indexes: scheduled, queued, running, succeeded, dead, cancelled
-- KEYS[12] event log (stream)   KEYS[13] follower names (set)   KEYS[14] cursor key prefix
-- KEYS[15] limits   KEYS[16] weights   KEYS[17] ready keys   KEYS[18] blocked keys
-- KEYS[19] the no-key group's record (lk:)   KEYS[20..22] krun, kpass, kidle
-- The event log and every follower's saved cursor go too (the names are those save_cursor
-- put in KEYS[13]: no scan), and the queue's limits (flow control: with no job left, no lane
-- holds work and no permit is out; other keys' `lk:` records expire by themselves).
-- Returns 1 (emptied; it was paused), 0 (emptied; not paused), or
-- {n_listed, n_scheduled, n_queued, n_running, n_succeeded, n_dead, n_cancelled} when a
-- job is left (nothing changed).
local counts = {redis.call('ZCARD', KEYS[5])}
local total = counts[1]
for i = 6, 11 do
  local n = redis.call('ZCARD', KEYS[i])
  counts[#counts + 1] = n
  total = total + n
end
if total > 0 then
  return counts
end
local paused = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[12], KEYS[15], KEYS[16], KEYS[17],
  KEYS[18], KEYS[19], KEYS[20], KEYS[21], KEYS[22])
local names = redis.call('SMEMBERS', KEYS[13])
for i = 1, #names, 500 do
  local dels = {}
  for j = i, math.min(i + 499, #names) do dels[#dels + 1] = KEYS[14] .. names[j] end
  redis.call('DEL', unpack(dels))
end
redis.call('DEL', KEYS[13])
return paused
