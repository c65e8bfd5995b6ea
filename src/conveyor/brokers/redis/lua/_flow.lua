-- _flow.lua: flow control at fetch (prepended after _lib.lua to fetch and the limits
-- scripts; not a script itself). See docs/decisions.md "Flow control" for the layout.
--
-- A limited fetch (1) moves the queue's inbox (`queued`: where every path puts QUEUED jobs)
-- into key lanes, bounded per call, (2) leases from the lanes: priority first, then the
-- eligible key with the smallest fairness pass (weighted fair queueing: serving a key adds
-- 1/weight to its pass; a key that gets work again starts at the queue's clock `vt`, so
-- idleness banks no credit), FIFO within a lane. A key at its concurrency or out of rate
-- tokens moves to `blocked`, scored by when it may run again ('inf': when a permit comes
-- back, see flow_return). Token buckets run on the broker's clock.

local FLOW_BAND = 4398046511104 -- 2^42: the priority part of a queued score
local FLOW_PASS = 4294967296 -- 2^32: a ready score is (-priority) * 2^32 + pass

local function fnum(x)
  return string.format('%.17g', x)
end

-- a positive number read back from the limits record, or nil (a damaged field is no limit)
local function fpos(x)
  local n = tonumber(x)
  if n and n > 0 and n < 1e15 then return n end
  return nil
end

local FLOW_FIELDS = {'c', 'rn', 'rp', 'rb', 'kc', 'krn', 'krp', 'krb', 'hw', 'run', 'tok',
  'ts', 'hold', 'hmax', 'vt', 'n', 'spec'}

local function flow_state(base)
  local F = {base = base, lim = base .. 'limits', ready = base .. 'ready',
    blocked = base .. 'blocked', lanes = base .. 'lane:', lks = base .. 'lk:',
    weights = base .. 'weights'}
  local v = redis.call('HMGET', F.lim, unpack(FLOW_FIELDS))
  for i, name in ipairs(FLOW_FIELDS) do F[name] = v[i] end
  F.c, F.kc = fpos(F.c), fpos(F.kc)
  F.rn, F.rp, F.rb = fpos(F.rn), fpos(F.rp), fpos(F.rb)
  if not (F.rn and F.rp and F.rb) then F.rn = nil end
  F.krn, F.krp, F.krb = fpos(F.krn), fpos(F.krp), fpos(F.krb)
  if not (F.krn and F.krp and F.krb) then F.krn = nil end
  F.run = math.max(tonumber(F.run) or 0, 0)
  F.n = math.max(tonumber(F.n) or 0, 0)
  F.hold = tonumber(F.hold) or 0
  F.hmax = tonumber(F.hmax) or 0
  F.vt = tonumber(F.vt) or 0
  F.tok, F.ts = tonumber(F.tok), tonumber(F.ts)
  return F
end

-- tokens in a bucket of `cap` refilled at n per `per` ms, last seen holding `tok` at `ts`
local function bucket(tok, ts, now, n, per, cap)
  if not tok then return cap end
  local t = tok + math.max(now - (ts or now), 0) * n / per
  if t > cap then return cap end
  return t
end

local function token_at(tok, now, n, per)
  return now + math.max(math.ceil((1 - tok) * per / n), 1)
end

local function weight(F, key)
  if F.hw ~= '1' or key == '' then return 1 end
  local w = tonumber(redis.call('HGET', F.weights, key))
  if w and w >= 1 and w <= 100 then return w end
  return 1
end

-- the ready score of a key: its lane head's priority, then its pass (nil: empty lane)
local function ready_score(F, key)
  local h = redis.call('ZRANGE', F.lanes .. key, 0, 0, 'WITHSCORES')
  if not h[2] then return nil end
  local pass = tonumber(redis.call('HGET', F.lks .. key, 'pass')) or F.vt
  return math.floor(tonumber(h[2]) / FLOW_BAND) * FLOW_PASS + pass
end

-- a key got work again: it starts at the queue's clock (no credit for idle time)
local function activate(F, key)
  local lk = F.lks .. key
  redis.call('PERSIST', lk)
  local pass = tonumber(redis.call('HGET', lk, 'pass'))
  if not pass or pass < F.vt then redis.call('HSET', lk, 'pass', fnum(F.vt)) end
  redis.call('ZADD', F.ready, fnum(ready_score(F, key)), key)
end

-- the inbox into the lanes, at most `limit` jobs (a record gone is dropped, as fetch does)
local function flow_drain(F, queued, jobprefix, limit)
  local popped = redis.call('ZPOPMIN', queued, limit)
  local touched, order = {}, {}
  for i = 1, #popped, 2 do
    local uid = popped[i]
    local v = redis.call('HMGET', jobprefix .. uid, 'state', 'limit_key')
    if v[1] then
      local key = v[2] or ''
      redis.call('ZADD', F.lanes .. key, popped[i + 1], uid)
      F.n = F.n + 1
      if not touched[key] then
        touched[key] = true
        order[#order + 1] = key
      end
    end
  end
  for _, key in ipairs(order) do
    if redis.call('ZSCORE', F.ready, key) then
      redis.call('ZADD', F.ready, fnum(ready_score(F, key)), key)
    elseif not redis.call('ZSCORE', F.blocked, key) then
      activate(F, key)
    end
  end
end

-- may key `key` start a job now? true, its bucket's tokens (nil: no rate), its permits out
-- and its pass; or false and when to look again (nil: when one of its permits comes back).
-- The no-key group ('') has no key limits.
local function key_gate(F, key, now)
  if key == '' then
    return true, nil, 0, tonumber(redis.call('HGET', F.lks, 'pass')) or F.vt
  end
  local v = redis.call('HMGET', F.lks .. key, 'run', 'tok', 'ts', 'hold', 'pass')
  local hold = tonumber(v[4]) or 0
  if hold > now then return false, hold, 'key_hold' end
  local run = tonumber(v[1]) or 0
  if F.kc and run >= F.kc then return false, nil, 'key_concurrency' end
  local pass = tonumber(v[5]) or F.vt
  if F.krn then
    local tok = bucket(tonumber(v[2]), tonumber(v[3]), now, F.krn, F.krp, F.krb)
    if tok < 1 then return false, token_at(tok, now, F.krn, F.krp), 'key_rate' end
    return true, tok, run, pass
  end
  return true, nil, run, pass
end

-- lease from the lanes until `count` jobs are out or a limit stops it; lease(uid) leases
-- one QUEUED job (false: its record was set aside). Returns (queue gated, when to look again)
local function flow_serve(F, now, count, out, lease)
  local due = redis.call('ZRANGEBYSCORE', F.blocked, '-inf', now, 'LIMIT', 0, 100)
  for _, key in ipairs(due) do
    redis.call('ZREM', F.blocked, key)
    local s = ready_score(F, key)
    if s then redis.call('ZADD', F.ready, fnum(s), key) end
  end
  local tries = 0
  while #out < count and tries < count + 100 do
    tries = tries + 1
    local gate, gate_at = nil, nil
    if F.hold > now then
      gate, gate_at = 'hold', F.hold
    elseif F.c and F.run >= F.c then
      gate = 'concurrency'
    elseif F.rn then
      F.tok = bucket(F.tok, F.ts, now, F.rn, F.rp, F.rb)
      F.ts = now
      if F.tok < 1 then gate, gate_at = 'rate', token_at(F.tok, now, F.rn, F.rp) end
    end
    if gate then
      -- held back by the queue's own limits: counted once per fetch that had work left
      if redis.call('ZCARD', F.ready) > 0 then
        redis.call('HINCRBY', F.lim, 'held:' .. gate, 1)
      end
      return true, gate_at
    end
    local key = redis.call('ZRANGE', F.ready, 0, 0)[1]
    if not key then break end
    local ok, tok, run, pass = key_gate(F, key, now)
    if not ok then
      redis.call('HINCRBY', F.lim, 'held:' .. run, 1) -- key_gate's third value: the reason
      redis.call('ZREM', F.ready, key)
      redis.call('ZADD', F.blocked, tok and int(tok) or 'inf', key)
    else
      local lk, lane = F.lks .. key, F.lanes .. key
      local uid = redis.call('ZPOPMIN', lane)[1]
      F.n = math.max(F.n - 1, 0)
      if lease(uid, key) then
        F.run = F.run + 1
        if F.rn then F.tok = F.tok - 1 end
        if pass > F.vt then F.vt = pass end
        pass = pass + 1 / weight(F, key)
        if key == '' then
          redis.call('HSET', lk, 'pass', fnum(pass))
        elseif tok then
          redis.call('HSET', lk, 'run', run + 1, 'pass', fnum(pass), 'tok', fnum(tok - 1),
            'ts', int(now))
        else
          redis.call('HSET', lk, 'run', run + 1, 'pass', fnum(pass))
        end
      end
      local h = redis.call('ZRANGE', lane, 0, 0, 'WITHSCORES')
      if h[2] then
        redis.call('ZADD', F.ready, fnum(math.floor(tonumber(h[2]) / FLOW_BAND) * FLOW_PASS
          + pass), key)
      else
        redis.call('ZREM', F.ready, key)
        flow_retire(F.base, key, now)
      end
    end
  end
  return false, nil
end

-- the end of a limited fetch: counters back, the next moment worth a look (min of the
-- next due job, the earliest blocked key and the queue's own gate), the baton passed on,
-- and the limits record dropped once it says nothing (no limits, no work, no permit out)
local function flow_finish(F, now, count, out, gated, gate_at, queued, scheduled, marker)
  redis.call('HSET', F.lim, 'run', F.run, 'n', F.n, 'vt', fnum(F.vt))
  if F.tok then redis.call('HSET', F.lim, 'tok', fnum(F.tok), 'ts', int(F.ts)) end
  local wake_at = tonumber(next_due(scheduled))
  if wake_at < 0 then wake_at = nil end
  local b = redis.call('ZRANGE', F.blocked, 0, 0, 'WITHSCORES')
  if b[2] and b[2] ~= 'inf' then
    local at = tonumber(b[2])
    if not wake_at or at < wake_at then wake_at = at end
  end
  if gate_at and (not wake_at or gate_at < wake_at) then wake_at = gate_at end
  local ready = redis.call('ZCARD', F.ready)
  if redis.call('ZCARD', queued) > 0 or (not gated and #out >= count and ready > 0) then
    wake(marker)
  end
  if not F.spec and F.n == 0 and F.run == 0 and F.hold <= now and F.hmax <= now
      and ready == 0 and redis.call('ZCARD', F.blocked) == 0 then
    redis.call('DEL', F.lim)
  end
  if wake_at then return int(wake_at) end
  return '-1'
end
