-- KEYS meta conn leases; ARGV session delta
-- Runs after guard.lua: `now` is Redis TIME in ms; an account not seeded is NOSEED.
local n = redis.call('HINCRBY', KEYS[2], ARGV[1], ARGV[2])
if n <= 0 or redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end
return n
