-- _lib.lua: helpers prepended to every Conveyor script at load time (not a script itself).
-- Scripts never build a key from anything but KEYS entries: job keys are KEYS[1] .. uid,
-- and KEYS[1] carries the queue's hash tag, so every key a script touches is in one slot.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function int(x)
  return string.format('%d', x)
end

-- queued score: higher priority first, FIFO (by seq) within a priority
local function queued_score(prio, seq)
  return (-tonumber(prio)) * 4398046511104 + tonumber(seq)
end

local function json_str(s)
  if s == nil or s == false or s == '' then return 'null' end
  return cjson.encode(s)
end

local function json_int(x)
  if x == nil or x == false or x == '' then return 'null' end
  return int(tonumber(x))
end

-- one history line (JSON) appended to the job's newline-separated history field
local function add_history(jk, attempt, worker, started, finished, outcome, code, msg, tb)
  local line = '{"attempt":' .. json_int(attempt) .. ',"worker":' .. json_str(worker)
    .. ',"started_at":' .. json_int(started) .. ',"finished_at":' .. json_int(finished)
    .. ',"outcome":' .. json_str(outcome) .. ',"error_code":' .. json_str(code)
    .. ',"message":' .. json_str(msg) .. ',"traceback":' .. json_str(tb) .. '}\n'
  local h = redis.call('HGET', jk, 'history') or ''
  redis.call('HSET', jk, 'history', h .. line)
end

-- wake one blocked worker (the marker list holds at most one element)
local function wake(marker)
  if redis.call('LLEN', marker) == 0 then
    redis.call('LPUSH', marker, '1')
  end
end

-- put a job into QUEUED with the given seq (new seq: back of its priority; old: its old place)
local function to_queued(jk, queued, uid, seq)
  local prio = redis.call('HGET', jk, 'prio') or '0'
  redis.call('ZADD', queued, queued_score(prio, seq), uid)
  redis.call('HSET', jk, 'state', 'queued')
end

-- SCHEDULED -> QUEUED for due jobs, at most `limit`; returns how many moved
local function promote(prefix, scheduled, queued, seqkey, now, limit)
  local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, limit)
  for _, uid in ipairs(due) do
    local jk = prefix .. uid
    redis.call('ZREM', scheduled, uid)
    if redis.call('EXISTS', jk) == 1 then
      local seq = redis.call('INCR', seqkey)
      redis.call('HSET', jk, 'seq', seq)
      to_queued(jk, queued, uid, seq)
    end
  end
  return #due
end

local function next_due(scheduled)
  local first = redis.call('ZRANGE', scheduled, 0, 0, 'WITHSCORES')
  if first[2] then return int(tonumber(first[2])) end
  return '-1'
end

-- true when the job is RUNNING under exactly this token (the fence of invariant 3)
local function holds_lease(jk, token)
  local v = redis.call('HMGET', jk, 'state', 'token')
  return v[1] == 'running' and v[2] == token
end

-- delete a finished job, its entry in the listing index and its idempotency key (if that
-- key still points at it)
local function delete_job(jk, idemprefix, listing, uid)
  redis.call('ZREM', listing, uid)
  local idem = redis.call('HGET', jk, 'idem')
  if idem and idem ~= '' then
    local ik = idemprefix .. idem
    if redis.call('GET', ik) == uid then redis.call('DEL', ik) end
  end
  redis.call('DEL', jk)
end

-- true when the job is DEAD and matches a DLQ selector (a decoded JSON object; an absent
-- field matches anything): type, code (error code), after (death ms, inclusive), before
-- (death ms, exclusive), skip (error codes never selected), maxr (only jobs redriven fewer
-- times than this)
local function dead_match(jk, sel)
  local v = redis.call('HMGET', jk, 'state', 'type', 'err_code', 'finished', 'redrives')
  if v[1] ~= 'dead' then return false end
  if sel.type and v[2] ~= sel.type then return false end
  if sel.code and v[3] ~= sel.code then return false end
  local died = tonumber(v[4]) or 0
  if sel.after and died < sel.after then return false end
  if sel.before and died >= sel.before then return false end
  if sel.skip then
    for _, c in ipairs(sel.skip) do
      if v[3] == c then return false end
    end
  end
  if sel.maxr and (tonumber(v[5]) or 0) >= sel.maxr then return false end
  return true
end

-- the uids a DLQ call names: ARGV[i] '*' with a limit in ARGV[i + 1] means the oldest dead
-- jobs of the selector's death range; otherwise ARGV[i ..] are the uids
local function pick_dead(dead, sel, argv, i)
  if argv[i] == '*' then
    local lo, hi = '-inf', '+inf'
    if sel.after then lo = int(sel.after) end
    if sel.before then hi = '(' .. int(sel.before) end
    return redis.call('ZRANGEBYSCORE', dead, lo, hi, 'LIMIT', 0, tonumber(argv[i + 1]))
  end
  local ids = {}
  for j = i, #argv do ids[#ids + 1] = argv[j] end
  return ids
end

-- the death event of a job moving to DEAD, written in the same script (at-least-once
-- on_dead hooks); one member per death: the redrive count tells a job's deaths apart
local function record_death(deaths, jk, uid, now)
  local n = redis.call('HGET', jk, 'redrives') or '0'
  redis.call('ZADD', deaths, now, uid .. ':' .. n)
end

-- forget the pending death event of a job about to be deleted
local function forget_death(deaths, jk, uid)
  local n = redis.call('HGET', jk, 'redrives') or '0'
  redis.call('ZREM', deaths, uid .. ':' .. n)
end
