-- KEYS meta agents; ARGV agent profile [status version op] (status only for a
-- new agent)
-- Runs after guard.lua: `now` is Redis TIME in ms; an account not seeded is NOSEED.
redis.call('HSET', KEYS[2], 'p:' .. ARGV[1], ARGV[2])
if ARGV[3] and redis.call('HEXISTS', KEYS[2], 's:' .. ARGV[1]) == 0 then
  redis.call('HSET', KEYS[2], 's:' .. ARGV[1], ARGV[3], 'sv:' .. ARGV[1], ARGV[4], 'o:' .. ARGV[1], ARGV[5])
end
redis.call('HINCRBY', KEYS[1], 'state', 1)
return 1
