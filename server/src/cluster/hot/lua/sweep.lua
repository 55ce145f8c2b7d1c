-- KEYS deadlines; ARGV key-prefix. Removes what is due and reports it.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, 256)
local out = {}
for i = 1, #due, 2 do
  local m = due[i]
  local score = due[i + 1]
  redis.call('ZREM', KEYS[1], m)
  local kind, acc, sid = string.match(m, '^(%a) (%S+) ?(%S*)$')
  local lk = ARGV[1] .. ':l:' .. acc
  if kind == 's' then
    local v = redis.call('HGET', lk, sid)
    if v then
      local agent, mode, dl = string.match(v, '^(.*)|(%a)|(%-?%d+)|')
      if tonumber(dl) <= now then
        redis.call('HDEL', lk, sid)
        redis.call('HDEL', ARGV[1] .. ':c:' .. acc, sid)
        redis.call('HDEL', ARGV[1] .. ':i:' .. acc, sid)
        redis.call('ZREM', KEYS[1], 'r ' .. acc .. ' ' .. sid)
        redis.call('HINCRBY', ARGV[1] .. ':m:' .. acc, 'state', 1)
        redis.call('PUBLISH', ARGV[1] .. ':e:' .. acc,
          '{"k":"ended","agent":"' .. agent .. '","session":"' .. sid .. '","reason":"expired"}')
        table.insert(out, {'s', acc, sid, agent, score})
      else
        redis.call('ZADD', KEYS[1], dl, m)
      end
    end
  elseif kind == 'r' then
    local v = redis.call('HGET', lk, sid)
    if v then table.insert(out, {'r', acc, sid, v, score}) end
  elseif kind == 'f' then
    table.insert(out, {'f', acc})
  elseif kind == 't' or kind == 'i' then
    table.insert(out, {kind, acc, sid, score})
  end
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {now, nxt[2] or '-1', out}
