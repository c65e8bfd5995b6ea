-- append_logs: keep log lines a handler wrote with its job, lease holder only, bounded.
-- KEYS[1] job key prefix   KEYS[2] log key prefix
-- ARGV[1] max lines   ARGV[2] max bytes   ARGV[3] JSON array of [uid, token, [line, ...]]
-- Outcomes, one per item: 1 kept (then trimmed to the last max lines and max bytes, oldest
-- first), 0 refused (not RUNNING under this token: a stale run's lines are dropped).
-- Every item is checked before the first write; a malformed batch writes nothing.
local max_lines = tonumber(ARGV[1])
local max_bytes = tonumber(ARGV[2])
if not max_lines or max_lines < 1 or not max_bytes or max_bytes < 1 then
  return redis.error_reply('ERR append_logs: bad bounds')
end
local items = cjson.decode(ARGV[3])
for _, item in ipairs(items) do
  if type(item[1]) ~= 'string' or type(item[2]) ~= 'string' or type(item[3]) ~= 'table' then
    return redis.error_reply('ERR append_logs: malformed item')
  end
  for _, line in ipairs(item[3]) do
    if type(line) ~= 'string' then return redis.error_reply('ERR append_logs: bad line') end
  end
end
local out = {}
for i, item in ipairs(items) do
  local uid, token, lines = item[1], item[2], item[3]
  if holds_lease(KEYS[1] .. uid, token) then
    local lk = KEYS[2] .. uid
    if #lines > 0 then
      local first = math.max(1, #lines - max_lines + 1)
      for j = first, #lines, 500 do
        redis.call('RPUSH', lk, unpack(lines, j, math.min(j + 499, #lines)))
      end
      redis.call('LTRIM', lk, -max_lines, -1)
      local kept = redis.call('LRANGE', lk, 0, -1)
      local total, drop = 0, 0
      for j = #kept, 1, -1 do
        total = total + #kept[j]
        if total > max_bytes then drop = j break end
      end
      if drop > 0 then redis.call('LTRIM', lk, drop, -1) end
    end
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
