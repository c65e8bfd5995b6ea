-- forget_queue: drop an empty queue from the registry, with its per-queue bookkeeping keys.
-- One script, so a job enqueued meanwhile is either seen here (the queue is not empty: refused)
-- or written after (and the enqueue path, which registers its queues AFTER its script, puts
-- the queue back). The registry key is outside the queue's slot (see docs/todo.md: Cluster).
-- KEYS[1] registry set cv:queues   KEYS[2] paused   KEYS[3] wake marker   KEYS[4] seq
-- KEYS[5] deaths   KEYS[6] listing (every job of the queue)
-- KEYS[7..12] the state indexes: scheduled, queued, running, succeeded, dead, cancelled
-- ARGV[1] the queue name
-- Returns 'ok', 'not_found' (neither registered nor paused, and empty), or
-- {n_listed, n_scheduled, n_queued, n_running, n_succeeded, n_dead, n_cancelled} when a
-- job is left (nothing changed).
local counts = {redis.call('ZCARD', KEYS[6])}
local total = counts[1]
for i = 7, 12 do
  local n = redis.call('ZCARD', KEYS[i])
  counts[#counts + 1] = n
  total = total + n
end
if total > 0 then
  return counts
end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 and redis.call('EXISTS', KEYS[2]) == 0 then
  return 'not_found'
end
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return 'ok'
