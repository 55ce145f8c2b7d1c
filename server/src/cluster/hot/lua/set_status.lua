-- KEYS meta agents deadlines; ARGV agent version status-json op event-json channel account until
-- Runs after guard.lua: `now` is Redis TIME in ms; an account not seeded is NOSEED.
-- A timed status (`until` not empty) puts its end in the partition's deadline index, one
-- entry per agent (a later timed status moves it); the sweep reports it to one node.
local cur = tonumber(redis.call('HGET', KEYS[2], 'sv:' .. ARGV[1]) or '-1')
if redis.call('HEXISTS', KEYS[2], 'p:' .. ARGV[1]) == 0 then return -1 end
if cur >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], 's:' .. ARGV[1], ARGV[3], 'sv:' .. ARGV[1], ARGV[2], 'o:' .. ARGV[1], ARGV[4])
if ARGV[8] ~= '' then
  redis.call('ZADD', KEYS[3], tonumber(ARGV[8]), 't ' .. ARGV[7] .. ' ' .. ARGV[1])
end
redis.call('HINCRBY', KEYS[1], 'state', 1)
redis.call('PUBLISH', ARGV[6], ARGV[5])
return 1
