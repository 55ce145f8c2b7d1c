-- KEYS meta deadlines; ARGV cfg acc
-- Runs after guard.lua: `now` is Redis TIME in ms; an account not seeded is NOSEED.
redis.call('HSET', KEYS[1], 'cfg', ARGV[1])
redis.call('ZREM', KEYS[2], 'f ' .. ARGV[2])
redis.call('HINCRBY', KEYS[1], 'state', 1)
return 1
