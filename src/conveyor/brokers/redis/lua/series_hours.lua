-- series_hours: reads only (issue 18). A queue's outcomes per hour, from its hour hashes
-- (`count_series` in _lib.lua; rolled-up ones by expire.lua hold the hour on its first
-- minute's fields): every field of the hour with the type suffix is summed, so a rolled hour
-- and one not rolled yet read alike.
-- KEYS[1] series key prefix (`<prefix>:{q}:series:`)
-- ARGV[1] first epoch hour   ARGV[2] last epoch hour   ARGV[3] type ('' every type)
-- Returns {s, f, d} per hour, first to last, flat. Work per hour: the smaller of the hash's
-- fields and the hour's 180 (minute, kind) fields.
local suffix = ':' .. ARGV[3]
local kinds = {s = 1, f = 2, d = 3}
local out = {}
local first, last = tonumber(ARGV[1]), tonumber(ARGV[2])
for hour = first, last do
  local key = KEYS[1] .. string.format('%d', hour)
  local base = #out
  out[base + 1], out[base + 2], out[base + 3] = 0, 0, 0
  local size = redis.call('HLEN', key)
  local function add(kind, value)
    local n = tonumber(value)
    local at = kinds[kind]
    if n and at and n > 0 then out[base + at] = out[base + at] + n end
  end
  if size > 0 and size <= 180 then
    local flat = redis.call('HGETALL', key)
    for i = 1, #flat, 2 do
      local kind, rest = string.match(flat[i], '^%d+:(%a)(:.*)$')
      if rest == suffix then add(kind, flat[i + 1]) end
    end
  elseif size > 0 then
    local fields, names = {}, {}
    for m = hour * 60, hour * 60 + 59 do
      for kind, _ in pairs(kinds) do
        fields[#fields + 1] = string.format('%d', m) .. ':' .. kind .. suffix
        names[#names + 1] = kind
      end
    end
    local values = redis.call('HMGET', key, unpack(fields))
    for i, value in ipairs(values) do add(names[i], value) end
  end
end
return out
