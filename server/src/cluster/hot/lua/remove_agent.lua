-- KEYS meta agents
-- Runs after guard.lua: `now` is Redis TIME in ms; an account not seeded is NOSEED.
redis.call('HDEL', KEYS[2], 'p:' .. ARGV[1], 's:' .. ARGV[1], 'sv:' .. ARGV[1], 'o:' .. ARGV[1])
redis.call('HINCRBY', KEYS[1], 'state', 1)
return 1
