-- counts: the size of each state index of one queue (reads only; one call per queue, so
-- stats of many queues cost one script call each instead of one command per state).
-- KEYS[1..n] the queue's state indexes, in the order the caller wants the counts back
-- Returns {ZCARD KEYS[1], ..., ZCARD KEYS[n]}.
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('ZCARD', KEYS[i])
end
return out
