-- revoke_wait: turn off the ticket of a pipelined wait-and-fetch (transitions.wait_and_fetch),
-- so the fetch queued behind its BLPOP leases nothing whenever it runs.
-- KEYS[1] the ticket   ARGV[1] how long the revoked ticket is kept (ms: longer than the wait)
-- Returns what the ticket said before: 'armed' (the fetch has not run: it will lease
-- nothing), 'revoked' (already), or nil (the fetch ran and consumed it, or the wait's SET
-- has not reached Redis yet: the revoked ticket now refuses it too).
local before = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], 'revoked', 'PX', ARGV[1])
return before
