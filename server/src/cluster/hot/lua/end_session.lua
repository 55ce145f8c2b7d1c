-- KEYS meta leases deadlines conn activity; ARGV session acc event-json channel
-- Runs after guard.lua: `now` is Redis TIME in ms; an account not seeded is NOSEED.
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[3], 's ' .. ARGV[2] .. ' ' .. ARGV[1], 'r ' .. ARGV[2] .. ' ' .. ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'state', 1)
redis.call('PUBLISH', ARGV[4], ARGV[3])
return 1
