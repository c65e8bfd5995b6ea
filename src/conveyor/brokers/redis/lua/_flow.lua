-- _flow.lua: flow control at fetch (prepended after _lib.lua to fetch and enqueue; not a
-- script itself). See docs/decisions.md "Flow control" for the layout.
--
-- The enqueue of a limited queue puts its QUEUED jobs straight into their key lanes. A
-- limited fetch (1) moves the queue's inbox (`queued`: where every other path puts QUEUED
-- jobs) into key lanes, bounded per call, (2) leases from the lanes: priority first, then the
-- eligible key with the smallest fairness pass (weighted fair queueing: serving a key adds
-- 1/weight to its pass; a key that gets work again starts at the queue's clock `vt`, so
-- idleness banks no credit), FIFO within a lane. A key at its concurrency or out of rate
-- tokens moves to `blocked`, scored by when it may run again ('inf': when a permit comes
-- back, see flow_return). Token buckets run on the broker's clock.

local FLOW_BAND = 4398046511104 -- 2^42: the priority part of a queued score
local FLOW_PASS = 4294967296 -- 2^32: a ready score is (-priority) * 2^32 + pass

-- a number as written to Redis: redis.call itself writes a Lua number with '%.17g' (exact,
-- unlike Lua's own tostring), so no string.format is needed
local function fnum(x)
  return x
end

-- a positive number read back from the limits record, or nil (a damaged field is no limit)
local function fpos(x)
  local n = tonumber(x)
  if n and n > 0 and n < 1e15 then return n end
  return nil
end

local FLOW_FIELDS = {'c', 'rn', 'rp', 'rb', 'kc', 'krn', 'krp', 'krb', 'hw', 'run', 'tok',
  'ts', 'hold', 'hmax', 'vt', 'n', 'spec'}

-- the names of a queue's flow-control keys (`base`: the queue's key prefix, with its tag)
local function flow_names(base)
  return {base = base, lim = base .. 'limits', ready = base .. 'ready',
    blocked = base .. 'blocked', lanes = base .. 'lane:', lks = base .. 'lk:',
    weights = base .. 'weights', krun = base .. 'krun', kpass = base .. 'kpass',
    kidle = base .. 'kidle'}
end

local function flow_state(base)
  local F = flow_names(base)
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

-- the ready score of a key: its lane head's priority, then its pass (nil: empty lane);
-- `pass` when the caller has it
local function ready_score(F, key, pass)
  local h = redis.call('ZRANGE', F.lanes .. key, 0, 0, 'WITHSCORES')
  if not h[2] then return nil end
  if not pass then pass = tonumber(redis.call('HGET', F.kpass, key)) or F.vt end
  return math.floor(tonumber(h[2]) / FLOW_BAND) * FLOW_PASS + pass
end

-- a key got work again: it starts at the queue's clock (no credit for idle time); its
-- record (bucket, hold) stops expiring
local function activate(F, key)
  redis.call('PERSIST', F.lks .. key)
  local pass = tonumber(redis.call('HGET', F.kpass, key))
  if not pass or pass < F.vt then
    pass = F.vt
    redis.call('HSET', F.kpass, key, fnum(pass))
  end
  redis.call('ZADD', F.ready, fnum(ready_score(F, key, pass)), key)
end

-- jobs into their key lanes: `adds[key]` holds key `key`'s (score, uid) pairs, `order` the
-- keys in the order met, `best[key]` the least score of a key's jobs. One ZADD per key, one
-- ZMSCORE for the keys touched; a key already ready is ranked again only when a job of a
-- higher priority than its head arrived (its rank cannot change otherwise); a key neither
-- ready nor blocked gets work again (activate)
local function flow_lanes_add(F, adds, order, best)
  for _, key in ipairs(order) do call_chunked({'ZADD', F.lanes .. key}, adds[key]) end
  local ranks = redis.call('ZMSCORE', F.ready, unpack(order))
  local idle = {}
  for i, key in ipairs(order) do
    local r = ranks[i]
    if r then
      if math.floor(best[key] / FLOW_BAND) < math.floor(tonumber(r) / FLOW_PASS) then
        redis.call('ZADD', F.ready, fnum(ready_score(F, key)), key)
      end
    else
      idle[#idle + 1] = key
    end
  end
  if #idle == 0 then return end
  local held = redis.call('ZMSCORE', F.blocked, unpack(idle))
  for i, key in ipairs(idle) do
    if not held[i] then activate(F, key) end
  end
end

-- one job for flow_lanes_add's lists
local function flow_lane_note(adds, order, best, key, score, uid)
  local a = adds[key]
  local s = tonumber(score)
  if not a then
    a = {}
    adds[key] = a
    order[#order + 1] = key
    best[key] = s
  elseif s < best[key] then
    best[key] = s
  end
  a[#a + 1] = score
  a[#a + 1] = uid
end

-- the inbox into the lanes, at most `limit` jobs (a record gone is dropped, as fetch does).
-- enqueue.lua puts a limited queue's new jobs into their lanes itself; the inbox holds the
-- jobs every other path makes QUEUED (promotion, retry, release, reap, redrive) and those
-- queued before the limits were set.
local function flow_drain(F, queued, jobprefix, limit)
  local popped = redis.call('ZPOPMIN', queued, limit)
  if #popped == 0 then return end
  local adds, order, best = {}, {}, {}
  for i = 1, #popped, 2 do
    local uid, score = popped[i], popped[i + 1]
    local v = redis.call('HMGET', jobprefix .. uid, 'state', 'limit_key')
    if v[1] then
      flow_lane_note(adds, order, best, v[2] or '', score, uid)
      F.n = F.n + 1
    end
  end
  if #order == 0 then return end
  flow_lanes_add(F, adds, order, best)
end

-- may key `key` start a job now? true, its bucket's tokens (nil: no rate); or false, when to
-- look again (nil: when one of its permits comes back) and the reason. `k` is the key's
-- record as read (run, tok, ts, hold; see flow_key). The no-key group ('') has no key limits.
local function key_gate(F, key, k, now)
  if key == '' then return true, nil end
  if k.hold > now then return false, k.hold, 'key_hold' end
  if F.kc and k.run >= F.kc then return false, nil, 'key_concurrency' end
  if F.krn then
    local tok = bucket(k.tok, k.ts, now, F.krn, F.krp, F.krb)
    if tok < 1 then return false, token_at(tok, now, F.krn, F.krp), 'key_rate' end
    return true, tok
  end
  return true, nil
end

-- the keys' states a fetch needs, read once per fetch for many keys at once: `run` (krun),
-- `pass` (kpass), and only when the queue has a key rate or a key may be held (hmax), the
-- bucket and hold of lk:<key> (one HMGET per key)
local function flow_keys_in(F, cache, keys, now)
  local want = {}
  for _, key in ipairs(keys) do
    if not cache[key] then want[#want + 1] = key end
  end
  if #want == 0 then return end
  local runs = redis.call('HMGET', F.krun, unpack(want))
  local passes = redis.call('HMGET', F.kpass, unpack(want))
  local own = F.krn or F.hmax > now
  for i, key in ipairs(want) do
    local k = {run = math.max(tonumber(runs[i]) or 0, 0), pass = tonumber(passes[i]) or F.vt,
      hold = 0}
    if own and key ~= '' then
      local v = redis.call('HMGET', F.lks .. key, 'tok', 'ts', 'hold')
      k.tok, k.ts, k.hold = tonumber(v[1]), tonumber(v[2]), tonumber(v[3]) or 0
    end
    cache[key] = k
  end
end

local function flow_key(F, cache, key, now)
  if not cache[key] then flow_keys_in(F, cache, {key}, now) end
  return cache[key]
end

-- a key whose lane emptied: its pass goes after FLOW_IDLE_MS unless it has work again
-- (flow_idle_sweep), its record (bucket, hold) expires once it says nothing
local function flow_idle_sweep(F, now)
  local due = redis.call('ZRANGEBYSCORE', F.kidle, '-inf', now, 'LIMIT', 0, 100)
  if #due == 0 then return end
  local r = redis.call('ZMSCORE', F.ready, unpack(due))
  local b = redis.call('ZMSCORE', F.blocked, unpack(due))
  local gone = {}
  for i, key in ipairs(due) do
    if not r[i] and not b[i] then gone[#gone + 1] = key end
  end
  if #gone > 0 then redis.call('HDEL', F.kpass, unpack(gone)) end
  redis.call('ZREM', F.kidle, unpack(due))
end

-- byte order of two key names (a zset's order for equal scores)
local function name_before(a, b)
  if a == b then return false end
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- (score, name) order of two ready entries {key, score}
local function entry_before(a, b)
  if a[2] ~= b[2] then return a[2] < b[2] end
  return name_before(a[1], b[1])
end

-- a binary heap of ready entries, least (score, name) first
local function heap_push(h, e)
  local i = #h + 1
  h[i] = e
  while i > 1 do
    local p = math.floor(i / 2)
    if not entry_before(h[i], h[p]) then break end
    h[i], h[p] = h[p], h[i]
    i = p
  end
end

local function heap_pop(h)
  local top, n = h[1], #h
  h[1] = h[n]
  h[n] = nil
  n = n - 1
  local i = 1
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l <= n and entry_before(h[l], h[m]) then m = l end
    if r <= n and entry_before(h[r], h[m]) then m = r end
    if m == i then break end
    h[i], h[m] = h[m], h[i]
    i = m
  end
  return top
end

-- the keys' states a serve changed, written back (one HSET of krun, one of kpass; the
-- buckets one HSET per key); then the keys it left without work go idle
local function flow_keys_out(F, cache, emptied, now)
  local runs, passes = {}, {}
  for key, k in pairs(cache) do
    if k.dirty then
      passes[#passes + 1] = key
      passes[#passes + 1] = fnum(k.pass)
      if key ~= '' then
        runs[#runs + 1] = key
        runs[#runs + 1] = k.run
        if k.tok then
          redis.call('HSET', F.lks .. key, 'tok', fnum(k.tok), 'ts', int(k.ts))
        end
      end
    end
  end
  if #runs > 0 then call_chunked({'HSET', F.krun}, runs) end
  if #passes > 0 then call_chunked({'HSET', F.kpass}, passes) end
  if #emptied == 0 then return end
  local idle = {}
  for _, key in ipairs(emptied) do
    idle[#idle + 1] = int(now + FLOW_IDLE_MS)
    idle[#idle + 1] = key
  end
  call_chunked({'ZADD', F.kidle}, idle)
  for _, key in ipairs(emptied) do
    if redis.call('EXISTS', F.lks .. key) == 1 then flow_retire(F.base, key, now) end
  end
end

-- lease from the lanes until `count` jobs are out or a limit stops it; lease(uid) leases
-- one QUEUED job (false: its record was set aside). Returns (queue gated, when to look again).
-- The eligible key with the least (ready score, name) goes next, exactly as if `ready` were
-- read at each step: its first `count` + 1 entries are read at once and served locally while
-- the least of them beats the first entry not read (`edge`); the new ranks, the keys'
-- records and the keys leaving `ready` are written once at the end (or before a re-read).
local function flow_serve(F, now, count, out, lease)
  local due = redis.call('ZRANGEBYSCORE', F.blocked, '-inf', now, 'LIMIT', 0, 100)
  for _, key in ipairs(due) do
    redis.call('ZREM', F.blocked, key)
    local s = ready_score(F, key)
    if s then
      redis.call('ZADD', F.ready, fnum(s), key)
    else -- its lane emptied after it was ranked (no peek, below)
      redis.call('ZADD', F.kidle, int(now + FLOW_IDLE_MS), key)
      flow_retire(F.base, key, now)
    end
  end
  flow_idle_sweep(F, now)
  local cache, ranks, gone, emptied, weights = {}, {}, {}, {}, {}
  -- the candidates: `list` (ready's first entries as read, in order, from `li` on) and
  -- `heap` (keys served since and ranked again before `edge`, the first entry not read;
  -- one ranked after it cannot go before a re-read, which then finds it in `ready`)
  local list, li, heap, edge = {}, 1, {}, nil
  local width = math.max(count, 1)
  -- the local changes into `ready` (new ranks, keys out)
  local function flush()
    local zadd, zrem = {}, {}
    for key, s in pairs(ranks) do
      zadd[#zadd + 1] = fnum(s)
      zadd[#zadd + 1] = key
    end
    for key in pairs(gone) do zrem[#zrem + 1] = key end
    if #zadd > 0 then call_chunked({'ZADD', F.ready}, zadd) end
    if #zrem > 0 then call_chunked({'ZREM', F.ready}, zrem) end
    ranks, gone = {}, {}
  end
  local function refill()
    flush()
    local r = redis.call('ZRANGE', F.ready, 0, width, 'WITHSCORES')
    list, li, heap, edge = {}, 1, {}, nil
    local n = #r / 2
    if n > width then
      edge = {r[2 * width + 1], tonumber(r[2 * width + 2])}
      n = width
    end
    local names = {}
    for i = 1, n do
      list[i] = {r[2 * i - 1], tonumber(r[2 * i])}
      names[i] = r[2 * i - 1]
    end
    flow_keys_in(F, cache, names, now)
  end
  -- the least candidate (nil: none), taken out of the candidates when `take`
  local function least(take)
    local e = list[li]
    if heap[1] and (not e or entry_before(heap[1], e)) then
      if take then return heap_pop(heap) end
      return heap[1]
    end
    if e and take then li = li + 1 end
    return e
  end
  -- jobs popped from a key's lane and not served yet: bufs[key] = ZPOPMIN's reply (uid,
  -- score, ...) with `i` its next uid and `done` when the lane held no more; a key that is
  -- served several times in a row pops its jobs at once. What is left goes back to the lane.
  local bufs = {}
  local function unbuffer()
    for key, b in pairs(bufs) do
      local back = {}
      for i = b.i, #b, 2 do
        back[#back + 1] = b[i + 1]
        back[#back + 1] = b[i]
      end
      if #back > 0 then call_chunked({'ZADD', F.lanes .. key}, back) end
    end
    bufs = {}
  end
  -- how many turns in a row key `key` (entry `e`, just taken, weight `w`) may take: while
  -- its rank, one 1/w more a turn, stays before the next candidate's, within the fetch's
  -- count and the limits' room (an estimate: each turn is still checked as any other)
  local function streak(key, e, k, w, tok)
    local m = count - #out
    if key ~= '' and F.kc then m = math.min(m, F.kc - k.run) end
    if tok then m = math.min(m, math.floor(tok)) end
    if F.c then m = math.min(m, F.c - F.run) end
    if F.rn then m = math.min(m, math.floor(F.tok)) end
    local c = least(false)
    if edge and (not c or entry_before(edge, c)) then c = edge end
    if c and m > 1 then
      local base, pass, n = math.floor(e[2] / FLOW_PASS) * FLOW_PASS, k.pass, 1
      while n < m do
        pass = pass + 1 / w
        local sc = base + pass
        if sc > c[2] or (sc == c[2] and not name_before(key, c[1])) then break end
        n = n + 1
      end
      m = n
    end
    return math.max(m, 1)
  end
  refill()
  -- bounded: `count` + 100 keys looked at (a key held back costs one), and at most 1,000
  -- keys found without work (their lanes emptied after they were ranked); a fetch cut short
  -- by a bound with keys left passes the baton (F.cut, flow_finish)
  local tries, stale = 0, 0
  while #out < count do
    if tries >= count + 100 or stale >= 1000 then
      F.cut = true
      break
    end
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
      if least(false) or edge or next(ranks) then
        redis.call('HINCRBY', F.lim, 'held:' .. gate, 1)
      end
      unbuffer()
      flush()
      flow_keys_out(F, cache, emptied, now)
      return true, gate_at
    end
    local best = least(false)
    if edge and (not best or entry_before(edge, best)) then
      refill()
      best = least(false)
    end
    if not best then break end
    least(true)
    local key = best[1]
    local k = flow_key(F, cache, key, now)
    local ok, tok, reason = key_gate(F, key, k, now)
    if not ok then
      redis.call('HINCRBY', F.lim, 'held:' .. reason, 1)
      gone[key], ranks[key] = true, nil
      redis.call('ZADD', F.blocked, tok and int(tok) or 'inf', key)
    else
      local w = weights[key]
      if not w then
        w = weight(F, key)
        weights[key] = w
      end
      local b = bufs[key]
      if not b or (b.i > #b and not b.done) then
        local m = streak(key, best, k, w, tok)
        b = redis.call('ZPOPMIN', F.lanes .. key, m)
        b.i, b.done = 1, #b < 2 * m
        bufs[key] = b
      end
      if b.i > #b then
        -- its lane emptied since it was ranked (ranks are not checked by a peek: below)
        tries, stale = tries - 1, stale + 1
        gone[key], ranks[key] = true, nil
        emptied[#emptied + 1] = key
      else
        local uid = b[b.i]
        local band = math.floor(tonumber(b[b.i + 1]) / FLOW_BAND)
        if band <= math.floor(best[2] / FLOW_PASS) then
          -- (else ranked above its head's priority: the job stays first, the key is ranked
          -- anew below)
          b.i = b.i + 2
          F.n = math.max(F.n - 1, 0)
          if lease(uid, key) then
            F.run = F.run + 1
            if F.rn then F.tok = F.tok - 1 end
            if k.pass > F.vt then F.vt = k.pass end
            k.pass = k.pass + 1 / w
            k.dirty = true
            if key ~= '' then
              k.run = k.run + 1
              if tok then k.tok, k.ts = tok - 1, now end
            end
          end
          if b.i <= #b then
            band = math.floor(tonumber(b[b.i + 1]) / FLOW_BAND) -- the next head, known
          end
        end
        if b.i > #b and b.done then
          gone[key], ranks[key] = true, nil -- its lane is empty
          emptied[#emptied + 1] = key
        else
          -- past what was popped, no peek at the next head: the key is ranked by the band
          -- of the job it just took, which the next head's cannot beat (a lane is in
          -- queued-score order), so a rank is never below the true one; the key's next
          -- turn checks it (above) or finds the lane empty
          local sc = band * FLOW_PASS + k.pass
          ranks[key] = sc
          if not edge or sc < edge[2] or (sc == edge[2] and name_before(key, edge[1])) then
            heap_push(heap, {key, sc})
          end
        end
      end
    end
  end
  unbuffer()
  flush()
  flow_keys_out(F, cache, emptied, now)
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
  if redis.call('ZCARD', queued) > 0 or (not gated and (#out >= count or F.cut) and ready > 0)
      then
    wake(marker)
  end
  if not F.spec and F.n == 0 and F.run == 0 and F.hold <= now and F.hmax <= now
      and ready == 0 and redis.call('ZCARD', F.blocked) == 0 then
    redis.call('DEL', F.lim, F.krun, F.kpass, F.kidle)
  end
  if wake_at then return int(wake_at) end
  return '-1'
end
