-- read_events: reads only. Events of one queue's log (a stream) after a cursor, oldest
-- first, with what a reader needs to tell whether events after its cursor were trimmed.
-- KEYS[1] the queue's event stream
-- ARGV[1] cursor: a stream id ('0-0': the start)   ARGV[2] count
-- Returns {last generated id, first entry id, trimmed (1 when the stream ever dropped an
-- entry: more added than it holds), entries}; {'0-0', '0-0', 0, {}} for a log never written.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'0-0', '0-0', 0, {}} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last, first, added, length = '0-0', '0-0', 0, 0
for i = 1, #info, 2 do
  local k = info[i]
  if k == 'last-generated-id' then last = info[i + 1]
  elseif k == 'first-entry' and info[i + 1] then first = info[i + 1][1]
  elseif k == 'entries-added' then added = tonumber(info[i + 1])
  elseif k == 'length' then length = tonumber(info[i + 1]) end
end
local trimmed = 0
if added > length then trimmed = 1 end
local rows = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
return {last, first, trimmed, rows}
