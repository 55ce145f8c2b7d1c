-- KEYS meta agents leases conn
-- Runs after guard.lua: `now` is Redis TIME in ms; an account not seeded is NOSEED.
return {now, redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]),
  redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', KEYS[4])}
