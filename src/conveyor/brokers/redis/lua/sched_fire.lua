-- sched_fire: the fire step of schedules of one queue. For each entry, atomically: check the
-- schedule still has the planned fingerprint, is not paused and its stored next tick is the
-- one planned; then make one job per tick (overlap 'skip': none while the previous job is
-- live; counted skipped), count the missed ticks, and move the next tick on. Any number of
-- callers may send the same entry: the first finds the next tick it planned, the others
-- find it moved on ('stale'), so each tick makes one job. Each job also carries the
-- idempotency key sched:<name>:<tick>, a second guard of the same promise.
-- KEYS[1] schedule hash prefix cv:{q}:sched:   KEYS[2] due zset   KEYS[3] job key prefix
-- KEYS[4] idempotency key prefix   KEYS[5] queued   KEYS[6] scheduled   KEYS[7] seq
-- KEYS[8] wake marker   KEYS[9] listing   KEYS[10] runs zset prefix cv:{q}:sruns:
-- ARGV[1] JSON array of entries [name, fingerprint, expected next (-1: a manual trigger,
--   outside the tick sequence), new next (-1: ended), (unused), [ticks (-1: now)],
--   [uids], missed]
-- ARGV[2] lookahead ms   ARGV[3] runs kept per schedule
-- Returns {now_ms, {{outcome, {uids made}, skipped}, ...}}; outcomes: 'fired' | 'gone' |
-- 'changed' | 'paused' | 'stale' | 'corrupt' | 'invalid'
local now = now_ms()
local bad_seq = check_seq(KEYS[7])
if bad_seq then return bad_seq end
local entries = cjson.decode(ARGV[1])
local lookahead, keep = tonumber(ARGV[2]), tonumber(ARGV[3])
local LIVE = {scheduled = true, queued = true, running = true}
local snow = int(now)
local first = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
local earliest = tonumber(first[2] or '-1')
local woke = false

local function whole(x, lo, hi)
  return type(x) == 'number' and x == math.floor(x) and x >= lo and x <= hi
end

-- the stored job template [type, payload, priority, max_attempts, timeout_ms|null], or nil
local function template(text)
  if type(text) ~= 'string' then return nil end
  local ok, v = pcall(cjson.decode, text)
  if not ok or type(v) ~= 'table' then return nil end
  if type(v[1]) ~= 'string' or v[1] == '' or type(v[2]) ~= 'string' then return nil end
  if not whole(v[3], -1000, 1000) or not whole(v[4], 1, 1e9) then return nil end
  local timeout = ''
  if v[5] ~= cjson.null then
    if not whole(v[5], 1, 1e15) then return nil end
    timeout = int(v[5])
  end
  return {type = v[1], payload = v[2], prio = int(v[3]), max_att = int(v[4]), timeout = timeout}
end

-- an entry Python built: checked all the same before anything is written
local function well_formed(e)
  if type(e) ~= 'table' or type(e[1]) ~= 'string' or type(e[2]) ~= 'string' then return false end
  if not whole(e[3], -1, 9e15) or not whole(e[4], -1, 9e15) or not whole(e[8], 0, 1e9) then
    return false
  end
  if type(e[6]) ~= 'table' or type(e[7]) ~= 'table' or #e[6] ~= #e[7] then return false end
  for i, t in ipairs(e[6]) do
    if not whole(t, -1, 9e15) then return false end
    local u = e[7][i]
    if type(u) ~= 'string' or #u ~= 32 or not string.find(u, '^[0-9a-f]+$') then return false end
  end
  return true
end

local function make_job(name, uid, tick, tpl, idem)
  local due = now
  if tick >= 0 then due = tick end
  local seq = redis.call('INCR', KEYS[7])
  local state = 'queued'
  if due > now then state = 'scheduled' end
  local jk = KEYS[3] .. uid
  redis.call('HSET', jk, 'type', tpl.type, 'payload', tpl.payload, 'prio', tpl.prio,
    'max_att', tpl.max_att, 'created', snow, 'run_at', int(due), 'seq', seq, 'state', state,
    'sched', name)
  if tick >= 0 then redis.call('HSET', jk, 'stick', int(tick)) end
  if tpl.timeout ~= '' then redis.call('HSET', jk, 'timeout', tpl.timeout) end
  if idem ~= '' then
    redis.call('HSET', jk, 'idem', idem)
    redis.call('SET', KEYS[4] .. idem, uid)
  end
  redis.call('ZADD', KEYS[9], 0, uid)
  if state == 'scheduled' then
    redis.call('ZADD', KEYS[6], due, uid)
    if earliest < 0 or due < earliest then
      earliest = due
      woke = true
    end
  else
    redis.call('ZADD', KEYS[5], queued_score(tpl.prio, seq), uid)
    woke = true
  end
  local rk = KEYS[10] .. name
  redis.call('ZADD', rk, 0, uid)
  redis.call('ZREMRANGEBYRANK', rk, 0, -(keep + 1))
  emit_event(jk, state == 'scheduled' and 'scheduled' or 'enqueued', nil)
end

local out = {}
for _, e in ipairs(entries) do
  local status = nil
  local h, tpl = nil, nil
  if not well_formed(e) then
    status = 'invalid'
  else
    h = redis.call('HMGET', KEYS[1] .. e[1], 'fp', 'next', 'paused', 'job', 'overlap',
      'last_job', 'fired', 'skipped', 'missed')
    if not h[1] then
      redis.call('ZREM', KEYS[2], e[1])
      status = 'gone'
    elseif h[1] ~= e[2] then
      status = 'changed'
    elseif e[3] >= 0 and h[3] == '1' then
      status = 'paused'
    elseif e[3] >= 0 and h[2] ~= int(e[3]) then
      status = 'stale'
    else
      tpl = template(h[4])
      -- the counters HINCRBY will add to must be integers (HINCRBY fails otherwise)
      for i = 7, 9 do
        if h[i] and not as_int(h[i], 0, 9e15) then tpl = nil end
      end
      if not tpl then status = 'corrupt' end
    end
  end
  if status then
    out[#out + 1] = {status, {}, 0}
  else
    local name, sk = e[1], KEYS[1] .. e[1]
    local made, skipped, last, last_tick = {}, 0, h[6], nil
    for i, tick in ipairs(e[6]) do
      local live = false
      if e[3] >= 0 and h[5] == 'skip' and last and last ~= '' then
        live = LIVE[redis.call('HGET', KEYS[3] .. last, 'state') or ''] or false
      end
      if live then
        skipped = skipped + 1
      else
        local uid, idem = e[7][i], ''
        if tick >= 0 then idem = 'sched:' .. name .. ':' .. int(tick) end
        local held = nil
        if idem ~= '' then held = redis.call('GET', KEYS[4] .. idem) end
        if held and redis.call('EXISTS', KEYS[3] .. held) == 1 then
          uid = held -- made already (cannot happen while the next tick guards; kept safe)
        elseif redis.call('EXISTS', KEYS[3] .. uid) == 0 then
          make_job(name, uid, tick, tpl, idem)
          made[#made + 1] = uid
        end
        last, last_tick = uid, tick
      end
    end
    if last_tick then
      local lt = ''
      if last_tick >= 0 then lt = int(last_tick) end
      redis.call('HSET', sk, 'last_job', last, 'last_tick', lt)
    end
    if e[3] >= 0 then -- a tick step (a manual trigger leaves the sequence alone)
      local fired = #made
      redis.call('HINCRBY', sk, 'fired', fired)
      redis.call('HINCRBY', sk, 'skipped', skipped)
      redis.call('HINCRBY', sk, 'missed', e[8])
      if e[4] >= 0 then
        redis.call('HSET', sk, 'next', int(e[4]))
        local score = e[4]
        if h[5] ~= 'skip' then score = score - lookahead end
        redis.call('ZADD', KEYS[2], score, name)
      else
        redis.call('HSET', sk, 'next', '')
        redis.call('ZREM', KEYS[2], name)
      end
    end
    out[#out + 1] = {'fired', made, skipped}
  end
end
if woke then wake(KEYS[8]) end
return {snow, out}
