-- KEYS: meta leases deadlines agents activity; ARGV: session, mode (a|b), active ttl,
-- background ttl, renew margin, account id, idle_ms ('' when the heartbeat reports none).
-- Runs after guard.lua. Applies rules::renewed_lease_until itself (atomicity; pinned to it by
-- tests/tests/lease_script.rs).
local v = redis.call('HGET', KEYS[2], ARGV[1])
if not v then return {-1} end
local agent, mode, dl, push = string.match(v, '^(.*)|(%a)|(%-?%d+)|(%d)$')
dl = tonumber(dl)
if dl <= now then return {-2} end
local want = ARGV[2]
local has_push = push == '1'
local margin = tonumber(ARGV[5])
local ttl = tonumber(ARGV[3])
if want == 'b' and has_push then ttl = tonumber(ARGV[4]) end
local untl = now + ttl
if mode == 'b' and want == 'b' and has_push and dl - margin <= now then untl = dl + ttl end
redis.call('HSET', KEYS[2], ARGV[1], agent .. '|' .. want .. '|' .. string.format('%d', untl) .. '|' .. push)
redis.call('ZADD', KEYS[3], untl, 's ' .. ARGV[6] .. ' ' .. ARGV[1])
local rk = 'r ' .. ARGV[6] .. ' ' .. ARGV[1]
if want == 'b' and has_push then
  redis.call('ZADD', KEYS[3], untl - margin, rk)
else
  redis.call('ZREM', KEYS[3], rk)
end
if ARGV[7] == '' then
  redis.call('HDEL', KEYS[5], ARGV[1])
else
  redis.call('HSET', KEYS[5], ARGV[1], string.format('%d', now) .. '|' .. ARGV[7])
end
local sv = tonumber(redis.call('HGET', KEYS[4], 'sv:' .. agent) or '0')
local changed = 0
if mode ~= want then changed = 1 end
return {untl, now, sv, changed, tonumber(push)}
