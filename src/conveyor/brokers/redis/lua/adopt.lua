-- adopt: the first step of a DLQ redrive into another queue: each dead job's copy becomes a
-- new QUEUED job of this queue, with the old job's history plus a line naming the old id and
-- who moved it. Each copy carries an idempotency key made of the old id and its redrive
-- count, so repeating the step after a crash (before the old job was deleted) finds the
-- copy already made and creates nothing.
-- KEYS[1] job key prefix   KEYS[2] idempotency key prefix   KEYS[3] queued   KEYS[4] seq
-- KEYS[5] wake marker   KEYS[6] listing   KEYS[7] log key prefix
-- ARGV[1] actor   ARGV[2] JSON array of [new uid, type, payload, priority, max_attempts,
--   timeout_ms ('' none), idempotency key, history, redrive count, old job id,
--   limit_key ('' none), [the old job's log lines (already within the logs' bounds)]]
-- The copy keeps the old job's flow-control key and log lines (the old ones are deleted
-- with the old job by the second step).
-- Returns per job the uid of the copy (new, or the one its key already names).
local now = now_ms()
local bad_seq = check_seq(KEYS[4])
if bad_seq then return bad_seq end
local out = {}
for _, j in ipairs(cjson.decode(ARGV[2])) do
  local uid, idem = j[1], j[7]
  local ik = KEYS[2] .. idem
  local cur = redis.call('GET', ik)
  if cur and redis.call('EXISTS', KEYS[1] .. cur) == 1 then
    out[#out + 1] = cur
  else
    local jk = KEYS[1] .. uid
    local seq = redis.call('INCR', KEYS[4])
    redis.call('SET', ik, uid)
    redis.call('HSET', jk, 'type', j[2], 'payload', j[3], 'prio', j[4], 'max_att', j[5],
      'created', int(now), 'run_at', int(now), 'seq', seq, 'idem', idem, 'fp', '',
      'history', j[8], 'redrives', j[9])
    if j[6] ~= '' then redis.call('HSET', jk, 'timeout', j[6]) end
    if type(j[11]) == 'string' and j[11] ~= '' then redis.call('HSET', jk, 'limit_key', j[11]) end
    local lines = j[12]
    if type(lines) == 'table' then
      for i = 1, #lines, 500 do
        redis.call('RPUSH', KEYS[7] .. uid, unpack(lines, i, math.min(i + 499, #lines)))
      end
    end
    redis.call('ZADD', KEYS[6], 0, uid)
    to_queued(jk, KEYS[3], uid, seq, j[4])
    add_history(jk, 0, ARGV[1], nil, now, 'redriven', nil,
      'redriven from ' .. j[10] .. ' by ' .. ARGV[1], nil)
    emit_event(jk, 'redriven', nil)
    out[#out + 1] = uid
  end
end
if #out > 0 then wake(KEYS[5]) end
return out
