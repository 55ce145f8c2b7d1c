-- KEYS meta leases deadlines; ARGV session push(0|1) acc
-- Runs after guard.lua: `now` is Redis TIME in ms; an account not seeded is NOSEED.
local v = redis.call('HGET', KEYS[2], ARGV[1])
if not v then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], string.sub(v, 1, -2) .. ARGV[2])
if ARGV[2] == '0' then redis.call('ZREM', KEYS[3], 'r ' .. ARGV[3] .. ' ' .. ARGV[1]) end
return 1
