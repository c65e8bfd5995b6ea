-- progress: store a running job's progress report, lease holder only, with its event.
-- KEYS[1] job key prefix
-- ARGV[1] JSON array of [uid, token, value (a finite number >= 0, as text), message ('': none)]
-- Returns one integer per item: 1 stored, 0 rejected (lease lost: a stale worker's late
-- report changes nothing). The report's time is the broker's.
local now = now_ms()
local out = {}
for _, p in ipairs(cjson.decode(ARGV[1])) do
  local jk = KEYS[1] .. p[1]
  if holds_lease(jk, p[2]) and string.find(p[3], '^%d+%.?%d*$') then
    local report = '{"value":' .. p[3] .. ',"message":' .. json_str(p[4]) .. ',"at":'
      .. int(now) .. '}'
    redis.call('HSET', jk, 'progress', report)
    emit_event(jk, 'progress', nil, report)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
