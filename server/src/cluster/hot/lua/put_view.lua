-- KEYS meta; ARGV state version view-json event-json channel reserved.
-- Empty view: only marks `state` as reflected (the view did not change).
-- Runs after guard.lua: `now` is Redis TIME in ms; an account not seeded is NOSEED.
if redis.call('HGET', KEYS[1], 'state') ~= ARGV[1] then return 0 end
if ARGV[3] == '' then
  redis.call('HSET', KEYS[1], 'view_of', ARGV[1])
  return 1
end
if tonumber(ARGV[2]) <= tonumber(redis.call('HGET', KEYS[1], 'ver') or '0') then return 2 end
redis.call('HSET', KEYS[1], 'ver', ARGV[2], 'view', ARGV[3], 'view_of', ARGV[1])
if tonumber(ARGV[6]) > tonumber(redis.call('HGET', KEYS[1], 'res') or '0') then
  redis.call('HSET', KEYS[1], 'res', ARGV[6])
end
redis.call('PUBLISH', ARGV[5], ARGV[4])
return 1
