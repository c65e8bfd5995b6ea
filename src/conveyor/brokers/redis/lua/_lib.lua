-- _lib.lua: helpers prepended to every Conveyor script at load time (not a script itself).
-- Scripts never build a key from anything but KEYS entries: job keys are KEYS[1] .. uid,
-- and KEYS[1] carries the queue's hash tag, so every key a script touches is in one slot.

-- the broker's clock, read once per script (TIME is a call: each later use is the same
-- instant, so a transition and its event carry one time)
local script_now = nil
local function now_ms()
  if not script_now then
    local t = redis.call('TIME')
    script_now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return script_now
end

local function int(x)
  return string.format('%d', x)
end

-- The job's event, appended to its queue's event log in the same script as the transition
-- (issue 17): a stream beside the job keys, `<base>events` (<base> is the job key prefix
-- without 'job:': same hash tag, so the same slot). EVENTS_MAXLEN (prepended by scripts.py
-- from CONVEYOR_EVENTS_MAXLEN) bounds the stream approximately; 0 turns events off. XADD runs
-- under pcall: a key of the wrong type loses events, never the transition.
-- `emit` takes the job's type, state and attempts as the transition left them from the
-- caller (the hot transitions know them: no read of the job hash); `emit_event` reads them
-- back from the job hash, so call it after the transition's writes.
local function emit(prefix, uid, ev, jtype, state, attempts, code, progress)
  if EVENTS_MAXLEN <= 0 then return end
  local event_ms = int(now_ms())
  local args = {'XADD', string.sub(prefix, 1, -5) .. 'events', 'MAXLEN', '~', EVENTS_MAXLEN,
    '*', 'u', uid, 't', jtype or '', 'e', ev, 's', state, 'a', attempts or '0', 'at', event_ms}
  if code and code ~= '' then args[#args + 1] = 'c' args[#args + 1] = code end
  if progress then args[#args + 1] = 'p' args[#args + 1] = progress end
  redis.pcall(unpack(args))
end

local function emit_event(jk, ev, code, progress)
  if EVENTS_MAXLEN <= 0 then return end
  local prefix, uid = string.match(jk, '^(.*:job:)([^:]*)$')
  if not prefix then return end
  local v = redis.call('HMGET', jk, 'type', 'state', 'attempts')
  emit(prefix, uid, ev, v[1], v[2] or '', v[3], code, progress)
end

-- queued score: higher priority first, FIFO (by seq) within a priority
local function queued_score(prio, seq)
  return (-tonumber(prio)) * 4398046511104 + tonumber(seq)
end

local function json_str(s)
  if s == nil or s == false or s == '' then return 'null' end
  return cjson.encode(s)
end

-- an integer in [lo, hi] from a hash field's text, or nil: only plain decimal digits (Lua's
-- tonumber also takes '1e3', '0x10', ' 5', 'inf' and 'nan'), at most 16 characters
local function as_int(s, lo, hi)
  if type(s) ~= 'string' or #s > 16 or not string.find(s, '^%-?%d+$') then return nil end
  local n = tonumber(s)
  if n < lo or n > hi then return nil end
  return n
end

local function json_int(x)
  if type(x) == 'number' then return int(x) end
  local n = as_int(x, -9e15, 9e15)
  if n then return int(n) end
  return 'null'
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
-- and its priority (checked by the caller: see job_problem)
local function to_queued(jk, queued, uid, seq, prio)
  redis.call('ZADD', queued, queued_score(prio, seq), uid)
  redis.call('HSET', jk, 'state', 'queued')
end

-- Check before write (invariant 10). Redis does not roll back a script that fails half-way,
-- so no script may run into a field it cannot use after its first write: each reads the
-- fields it needs once (read_job), asks job_problem about those it uses (its own list: a
-- script checks what it reads, no more, on the hot path), and sets a record that fails
-- aside (set_corrupt) instead of touching it. The rules are those of brokers/records.py,
-- which `get()` applies to every field.
local JOB_STATES = {scheduled = true, queued = true, running = true, succeeded = true,
  dead = true, cancelled = true}
-- hash field -> {name in messages, required, lowest, highest}
local INT_RULES = {
  prio = {'priority', true, -1000, 1000}, attempts = {'attempts', false, 0, 1e9},
  max_att = {'max_attempts', true, 1, 1e9}, timeout = {'timeout', false, 0, 1e15},
  seq = {'seq', true, 0, 9e15},
}

-- the named fields of a job hash (false where absent; state false: no such job)
local function read_job(jk, fields)
  local v = redis.call('HMGET', jk, unpack(fields))
  local j = {}
  for i, name in ipairs(fields) do j[name] = v[i] end
  return j
end

-- a value for a message: at most 40 characters, printable ASCII only
local function quote(s)
  return "'" .. (string.gsub(string.sub(s, 1, 40), '[^%w%p ]', '?')) .. "'"
end

-- nil when the state (the one of the index the job was found in, `want`, if given) and each
-- of `checks` (hash fields: 'type', 'payload', or one of INT_RULES) are usable; else what is
-- wrong
local function job_problem(j, want, checks)
  if not JOB_STATES[j.state] then
    if not j.state or j.state == '' then return 'field state is missing' end
    return 'field state is not a job state: ' .. quote(j.state)
  end
  if want and j.state ~= want then
    return 'field state is ' .. quote(j.state) .. ' but the job is in the ' .. want .. ' index'
  end
  for _, field in ipairs(checks) do
    local v, r = j[field], INT_RULES[field]
    if not r then -- 'type' or 'payload': present, and type not empty
      if not v or (field == 'type' and v == '') then return 'field ' .. field .. ' is missing' end
    elseif not v or v == '' then
      if r[2] then return 'field ' .. r[1] .. ' is missing' end
    elseif not as_int(v, r[3], r[4]) then
      return 'field ' .. r[1] .. ' is not an integer in [' .. int(r[3]) .. ', ' .. int(r[4])
        .. ']: ' .. quote(v)
    end
  end
  return nil
end

-- a queue's seq counter must be an integer before a script INCRs it (INCR fails otherwise)
local function check_seq(seqkey)
  local s = redis.call('GET', seqkey)
  if s and not as_int(s, 0, 9e15) then
    return redis.error_reply('corrupt_queue: ' .. seqkey .. ' is not an integer')
  end
  return nil
end

-- `n` new seqs of a queue in one call (enqueue): the last of them, or nil and the error
-- reply when the counter is not an integer INCRBY can take (before any write, as check_seq;
-- INCRBY itself refuses one, so no GET first). `fresh`: the counter did not exist (a new
-- queue, or one forget_queue emptied: its registry entry may be gone). Any other refusal
-- of the INCRBY (OOM from a full Redis, READONLY, ...) is the server's, not the counter's:
-- it is answered as it came (nothing was written), never as corrupt_queue.
local function take_seqs(seqkey, n)
  local last = redis.pcall('INCRBY', seqkey, n)
  if type(last) == 'table' and last.err then
    local e = last.err
    if not (string.find(e, '^WRONGTYPE') or string.find(e, 'not an integer', 1, true)
        or string.find(e, 'overflow', 1, true)) then
      return nil, last
    end
  end
  if type(last) ~= 'number' or last - n < 0 or last > 9e15 then
    -- an integer out of check_seq's range: put it back as it was
    if type(last) == 'number' then redis.call('DECRBY', seqkey, n) end
    return nil, redis.error_reply('corrupt_queue: ' .. seqkey .. ' is not an integer')
  end
  return last, last == n
end

-- SCHEDULED -> QUEUED for due jobs, at most `limit`; a record that does not parse is set
-- aside (set_corrupt, defined below, passed in). Returns how many moved, how many set aside.
local PROMOTE_READS = {'state', 'prio', 'type', 'attempts'}
local PROMOTE_CHECKS = {'prio'}
local function promote(prefix, scheduled, queued, seqkey, now, limit, set_aside)
  local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, limit)
  local moved, aside = 0, 0
  for _, uid in ipairs(due) do
    local jk = prefix .. uid
    local j = read_job(jk, PROMOTE_READS)
    local problem = j.state and job_problem(j, 'scheduled', PROMOTE_CHECKS)
    redis.call('ZREM', scheduled, uid)
    if problem then
      set_aside(jk, uid, problem)
      aside = aside + 1
    elseif j.state then
      local seq = redis.call('INCR', seqkey)
      redis.call('HSET', jk, 'seq', seq)
      to_queued(jk, queued, uid, seq, j.prio)
      emit(prefix, uid, 'enqueued', j.type, 'queued', j.attempts)
      moved = moved + 1
    end
  end
  return moved, aside
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

-- the same fence on fields already read (read_job with 'state' and 'token')
local function holds(j, token)
  return j.state == 'running' and j.token == token
end

-- delete a finished job, its entry in the listing index, its idempotency key (if that
-- key still points at it) and its log lines (`<base>logs:<uid>`, built from the job key
-- `<base>job:<uid>`: the same slot)
local function delete_job(jk, idemprefix, listing, uid)
  redis.call('ZREM', listing, uid)
  redis.call('DEL', string.sub(jk, 1, #jk - #uid - 4) .. 'logs:' .. uid)
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

-- the redrive count that names a job's death event ('0' when the field is unusable)
local function death_n(jk)
  local n = redis.call('HGET', jk, 'redrives')
  if as_int(n, 0, 1e9) then return n end
  return '0'
end

-- the death event of a job moving to DEAD, written in the same script (at-least-once
-- on_dead hooks); one member per death: the redrive count tells a job's deaths apart
local function record_death(deaths, jk, uid, now)
  redis.call('ZADD', deaths, now, uid .. ':' .. death_n(jk))
end

-- forget the pending death event of a job about to be deleted
local function forget_death(deaths, jk, uid)
  redis.call('ZREM', deaths, uid .. ':' .. death_n(jk))
end

-- Flow control (issue 16; docs/decisions.md "Flow control"). A queue with limits, or with
-- work left in its key lanes, has the hash <base>limits; its other keys are <base>lane:<key>
-- (QUEUED jobs of one limit key, '' for jobs without one), <base>krun (key -> permits out),
-- <base>kpass (key -> fairness pass), <base>kidle (keys whose lane emptied, for their pass to
-- go), <base>lk:<key> (that key's rate bucket and hold), <base>ready / <base>blocked (keys
-- with work, eligible / not before the score). <base> is the job prefix without 'job:', so
-- every one of these keys carries the queue's hash tag: same slot as the declared keys.
-- Permit values: 'p' (leased through krun), 'q' (the same, the queue had a concurrency);
-- '1' and 'c' are those of permits leased before krun, counted in lk:<key>'s `run`.
local function flow_base_of(jk, uid)
  return string.sub(jk, 1, #jk - #uid - 4)
end

-- a command with its arguments `args` (a list) given in chunks of at most 1,000 (Lua's
-- unpack has a bound), each chunk after the fixed `head`
local function call_chunked(head, args)
  for i = 1, #args, 1000 do
    local c = {unpack(head)}
    for j = i, math.min(i + 999, #args) do c[#c + 1] = args[j] end
    redis.call(unpack(c))
  end
end

-- a key with no work (and no permit out of the older kind): let its record (lk:, bucket and
-- hold) expire once its bucket is full and its hold is over (a fresh record then says the
-- same), so idle keys cost no memory
local function flow_retire(base, key, now)
  if redis.call('EXISTS', base .. 'lane:' .. key) == 1 then return end
  local lk = base .. 'lk:' .. key
  local v = redis.call('HMGET', lk, 'run', 'tok', 'hold')
  if (tonumber(v[1]) or 0) > 0 then return end
  local r = redis.call('HMGET', base .. 'limits', 'krn', 'krp', 'krb')
  local n, per, cap = tonumber(r[1]), tonumber(r[2]), tonumber(r[3])
  local ttl = 1000
  if n and per and cap and n > 0 then
    ttl = ttl + math.ceil(math.max(cap - (tonumber(v[2]) or cap), 0) * per / n)
  end
  local hold = tonumber(v[3]) or 0
  if hold > now then ttl = ttl + hold - now end
  redis.call('PEXPIRE', lk, ttl)
end

-- how long a key's pass outlives its work (kidle): a key back within it keeps its place
local FLOW_IDLE_MS = 1000

-- give back the permit a RUNNING job holds (taken by a limited fetch), exactly once: the
-- job's `permit` field goes in the same step. Every transition out of RUNNING calls it
-- (the ack through flow_batch).
local function flow_return(jk, uid, now)
  local p = redis.call('HMGET', jk, 'permit', 'limit_key')
  local permit = p[1]
  local legacy = permit == '1' or permit == 'c'
  if not legacy and permit ~= 'p' and permit ~= 'q' then return end
  local base = flow_base_of(jk, uid)
  local lim = base .. 'limits'
  redis.call('HDEL', jk, 'permit')
  local run = redis.call('HINCRBY', lim, 'run', -1)
  if run < 0 then redis.call('HSET', lim, 'run', 0) end
  -- wake a worker only when this permit frees waiting work: the queue was at its
  -- concurrency, or the key was waiting on a permit
  local freed = false
  if permit == 'c' or permit == 'q' then
    local c = tonumber(redis.call('HGET', lim, 'c'))
    freed = c ~= nil and run + 1 >= c
  end
  local key = p[2]
  if key and key ~= '' then
    local krun
    if legacy then
      krun = redis.call('HINCRBY', base .. 'lk:' .. key, 'run', -1)
      if krun < 0 then redis.call('HSET', base .. 'lk:' .. key, 'run', 0) end
    else
      krun = redis.call('HINCRBY', base .. 'krun', key, -1)
      if krun <= 0 then redis.call('HDEL', base .. 'krun', key) end
    end
    local blocked = base .. 'blocked'
    if redis.call('ZSCORE', blocked, key) == 'inf' then
      redis.call('ZADD', blocked, now, key)
      freed = true
    end
    if legacy and krun <= 0 then flow_retire(base, key, now) end
  end
  if freed and (tonumber(redis.call('HGET', lim, 'n')) or 0) > 0 then wake(base .. 'marker') end
end

-- the permits one ack call gives back, counted once per call (flow_batch_end) rather than
-- once per job: `flow_batch_take` notes a job's permit (read with the job: `permit`,
-- `limit_key`) and says whether it held one, in which case the caller's own HSET of the job
-- clears the field (to ''), in the same step as flow_return's HDEL would
local function flow_batch(base)
  return {base = base, n = 0, c = false, keys = {}, order = {}, legacy = {}}
end

local function flow_batch_take(B, permit, key)
  local legacy = permit == '1' or permit == 'c'
  if not legacy and permit ~= 'p' and permit ~= 'q' then return false end
  B.n = B.n + 1
  if permit == 'c' or permit == 'q' then B.c = true end
  if key and key ~= '' then
    if legacy then
      B.legacy[#B.legacy + 1] = key
    else
      local m = B.keys[key]
      if not m then B.order[#B.order + 1] = key end
      B.keys[key] = (m or 0) + 1
    end
  end
  return true
end

-- the batch's permits back: the queue's count once, the keys' with one HMGET and one HSET
-- (and one HDEL for keys left with none) of `krun`. A key waits on a permit (`blocked` at
-- 'inf') only when a fetch found it at its `kc` (key_concurrency), and then no lease of it
-- happens before the first give-back, so `blocked` is looked at only when the key was at
-- `kc` before this give-back, or when a change of limits left such keys behind (`infx`, see
-- limits.lua). Permits of the older kind go back as flow_return gives them.
local function flow_batch_end(B, now)
  if B.n == 0 then return end
  local base = B.base
  local lim = base .. 'limits'
  local blocked = base .. 'blocked'
  local run = redis.call('HINCRBY', lim, 'run', -B.n)
  if run < 0 then redis.call('HSET', lim, 'run', 0) end
  local v = redis.call('HMGET', lim, 'c', 'kc', 'infx', 'n')
  local freed = false
  if B.c then
    local c = tonumber(v[1])
    freed = c ~= nil and run + B.n >= c
  end
  local kc = tonumber(v[2])
  local function unblock(key)
    if redis.call('ZSCORE', blocked, key) == 'inf' then
      redis.call('ZADD', blocked, now, key)
      freed = true
    end
  end
  if #B.order > 0 then
    local krun = base .. 'krun'
    local cur = {}
    for i = 1, #B.order, 1000 do
      local part = {}
      for j = i, math.min(i + 999, #B.order) do part[#part + 1] = B.order[j] end
      local got = redis.call('HMGET', krun, unpack(part))
      for j = 1, #part do cur[#cur + 1] = got[j] end
    end
    local sets, dels = {}, {}
    for i, key in ipairs(B.order) do
      local was = math.max(tonumber(cur[i]) or 0, 0)
      local left = was - B.keys[key]
      if left > 0 then
        sets[#sets + 1] = key
        sets[#sets + 1] = left
      else
        dels[#dels + 1] = key
      end
      if v[3] or (kc and was >= kc) then unblock(key) end
    end
    if #sets > 0 then call_chunked({'HSET', krun}, sets) end
    if #dels > 0 then call_chunked({'HDEL', krun}, dels) end
  end
  for _, key in ipairs(B.legacy) do
    local lk = base .. 'lk:' .. key
    local krun = redis.call('HINCRBY', lk, 'run', -1)
    if krun < 0 then redis.call('HSET', lk, 'run', 0) end
    unblock(key)
    if krun <= 0 then flow_retire(base, key, now) end
  end
  if freed and (tonumber(v[4]) or 0) > 0 then wake(base .. 'marker') end
end

-- a QUEUED job leaving its key lane other than by fetch (cancel): out of the lane, and its
-- key out of ready / blocked when that was its last job (its pass to go after FLOW_IDLE_MS,
-- its record to expire)
local function flow_unlane(jk, uid, now)
  local key = redis.call('HGET', jk, 'limit_key') or ''
  local base = flow_base_of(jk, uid)
  local lane = base .. 'lane:' .. key
  if redis.call('ZREM', lane, uid) == 0 then return end
  redis.call('HINCRBY', base .. 'limits', 'n', -1)
  if redis.call('EXISTS', lane) == 0 then
    redis.call('ZREM', base .. 'ready', key)
    redis.call('ZREM', base .. 'blocked', key)
    redis.call('ZADD', base .. 'kidle', int(now + FLOW_IDLE_MS), key)
    flow_retire(base, key, now)
  end
end

-- a handler said its upstream is rate limited (RateLimited): hold the job's key (the whole
-- queue for a job without one) until now + ms; the limits record keeps the queue on the
-- limited path (`hmax`: the latest hold of any key) until every hold is over
local function flow_hold(jk, uid, now, ms)
  local base = flow_base_of(jk, uid)
  local lim = base .. 'limits'
  local key = redis.call('HGET', jk, 'limit_key') or ''
  local until_ms = now + ms
  local field = 'hmax'
  if key == '' then field = 'hold' end
  if until_ms > (tonumber(redis.call('HGET', lim, field)) or 0) then
    redis.call('HSET', lim, field, int(until_ms))
  end
  if key ~= '' then
    local lk = base .. 'lk:' .. key
    if until_ms > (tonumber(redis.call('HGET', lk, 'hold')) or 0) then
      redis.call('HSET', lk, 'hold', int(until_ms))
    end
    redis.call('PERSIST', lk)
    if redis.call('ZSCORE', base .. 'ready', key) then
      redis.call('ZREM', base .. 'ready', key)
      redis.call('ZADD', base .. 'blocked', until_ms, key)
    end
  end
end

-- set a record that does not parse aside: DEAD with code corrupt_job and a message (and a
-- history line) naming what is wrong, in the dead index only (out of `index`, where the
-- caller found it, unless nil: already popped), its death recorded like any other. Writes
-- only fields it does not read, so it cannot fail on the record it sets aside.
local function set_corrupt(jk, uid, index, dead, deaths, now, problem)
  local msg = 'corrupt record: ' .. problem
  flow_return(jk, uid, now)
  if index then redis.call('ZREM', index, uid) end
  redis.call('ZADD', dead, now, uid)
  redis.call('HSET', jk, 'state', 'dead', 'finished', int(now), 'token', '',
    'err_code', 'corrupt_job', 'err_msg', msg)
  add_history(jk, 0, nil, nil, now, 'dead', 'corrupt_job', msg, nil)
  record_death(deaths, jk, uid, now)
  emit_event(jk, 'dead', 'corrupt_job')
end

-- count_series (issue 18): one more `kind` ('s' succeeded, 'f' failed attempt, 'd' dead) in
-- this minute's counters of the job's queue, for its type and for every type, written by the
-- transition itself (so the series equal what happened). One hash per queue and hour,
-- keys.QueueKeys.series: `<prefix>:{q}:series:<epoch hour>`, built from the job key prefix
-- (the same slot); fields `<epoch minute>:<kind>:<type>` ('' type: every type). An hour's
-- hash expires 7 days after the hour ends. (An hour of one type's successes is 120 fields:
-- a compact listpack, a third of the memory of one hash per day.)
local SERIES_KEEP_MS = 7 * 86400000
-- `jtype`: the job's type when the caller read it (nil: read here); the hour's expiry is
-- set when a minute's every-type field is created (HINCRBY answers 1), the only time the
-- hash can be new: once a minute per kind, not on every count
local function count_series(job_prefix, jk, now, kind, jtype)
  local minute = math.floor(now / 60000)
  local hour = math.floor(minute / 60)
  local key = string.sub(job_prefix, 1, -5) .. 'series:' .. int(hour)
  local field = int(minute) .. ':' .. kind .. ':'
  if jtype == nil then jtype = redis.call('HGET', jk, 'type') end
  if redis.call('HINCRBY', key, field, 1) == 1 then
    redis.call('PEXPIREAT', key, int((hour + 1) * 3600000 + SERIES_KEEP_MS))
  end
  if jtype and jtype ~= '' and #jtype <= 128 then redis.call('HINCRBY', key, field .. jtype, 1) end
end
