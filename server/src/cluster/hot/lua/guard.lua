-- Opens every script but seed: refuses an account Redis does not hold yet (NOSEED, so the
-- node seeds it from PostgreSQL and retries) and sets `now` from Redis TIME, in ms.
if redis.call('HEXISTS', KEYS[1], 'cfg') == 0 then return redis.error_reply('NOSEED') end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
