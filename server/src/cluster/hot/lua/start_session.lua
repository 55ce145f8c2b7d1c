-- KEYS meta leases deadlines; ARGV session lease until acc
-- Runs after guard.lua: `now` is Redis TIME in ms; an account not seeded is NOSEED.
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], 's ' .. ARGV[4] .. ' ' .. ARGV[1])
redis.call('HINCRBY', KEYS[1], 'state', 1)
return now
