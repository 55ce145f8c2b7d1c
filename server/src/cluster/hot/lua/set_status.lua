-- KEYS meta agents; ARGV agent version status-json op event-json channel
-- Runs after guard.lua: `now` is Redis TIME in ms; an account not seeded is NOSEED.
local cur = tonumber(redis.call('HGET', KEYS[2], 'sv:' .. ARGV[1]) or '-1')
if redis.call('HEXISTS', KEYS[2], 'p:' .. ARGV[1]) == 0 then return -1 end
if cur >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], 's:' .. ARGV[1], ARGV[3], 'sv:' .. ARGV[1], ARGV[2], 'o:' .. ARGV[1], ARGV[4])
redis.call('HINCRBY', KEYS[1], 'state', 1)
redis.call('PUBLISH', ARGV[6], ARGV[5])
return 1
