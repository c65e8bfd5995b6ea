-- sched_delete: remove a schedule with its due entry and its runs index. A fire step that
-- comes after finds it gone and changes nothing; the jobs it made stay.
-- KEYS[1] the schedule's hash  KEYS[2] due zset  KEYS[3] its runs zset  cv:{q}:sruns:<name>
-- ARGV[1] name
-- Outcomes: 1 deleted | 0 there was none
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[1])
return existed
