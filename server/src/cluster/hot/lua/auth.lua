-- KEYS meta leases agents; ARGV session agent
-- Runs after guard.lua: `now` is Redis TIME in ms; an account not seeded is NOSEED.
return {now, redis.call('HGET', KEYS[2], ARGV[1]) or '', redis.call('HGET', KEYS[3], 'p:' .. ARGV[2]) or ''}
