-- scan_dead: one bounded step through the dead index (oldest death first) collecting the
-- uids that match a selector. Reads only. Entries are ordered by (death ms, uid), the zset
-- order, so the cursor (the last entry examined) stays valid while jobs leave the index.
-- KEYS[1] job key prefix   KEYS[2] dead
-- ARGV[1] selector (JSON object, see dead_match in _lib.lua)   ARGV[2] limit (uids returned)
-- ARGV[3] scan (entries examined at most)   ARGV[4] cursor death ms ('' = from the start of
-- the selector's range)   ARGV[5] cursor uid
-- Returns {uids, cursor ms ('' if nothing examined), cursor uid, done (1: range exhausted)}
local sel = cjson.decode(ARGV[1])
local limit, scan = tonumber(ARGV[2]), tonumber(ARGV[3])
local start = 0
if ARGV[4] ~= '' then
  -- rank of the first entry after (cursor ms, cursor uid): a binary search among the
  -- entries that died in the same millisecond (a batch can die at once)
  local lo = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. ARGV[4])
  local hi = lo + redis.call('ZCOUNT', KEYS[2], ARGV[4], ARGV[4])
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if redis.call('ZRANGE', KEYS[2], mid, mid)[1] <= ARGV[5] then lo = mid + 1 else hi = mid end
  end
  start = lo
elseif sel.after then
  start = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. int(sel.after))
end
local rows = redis.call('ZRANGE', KEYS[2], start, start + scan - 1, 'WITHSCORES')
local out = {}
local last_ms, last_uid = '', ''
local done = #rows < 2 * scan
for i = 1, #rows, 2 do
  local uid, died = rows[i], tonumber(rows[i + 1])
  if sel.before and died >= sel.before then
    done = true
    break
  end
  last_ms, last_uid = int(died), uid
  if dead_match(KEYS[1] .. uid, sel) then
    out[#out + 1] = uid
    if #out >= limit then
      done = done and i + 1 == #rows
      break
    end
  end
end
if ARGV[4] ~= '' and last_ms == '' then last_ms, last_uid = ARGV[4], ARGV[5] end
return {out, last_ms, last_uid, done and 1 or 0}
