-- KEYS meta agents leases deadlines; ARGV cfg ver epoch acc, then
-- n_agents, (agent profile status version op)*, then (session lease until)*.
if redis.call('HEXISTS', KEYS[1], 'cfg') == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'cfg', ARGV[1], 'ver', ARGV[2], 'res', ARGV[2], 'state', 1,
  'view_of', 0, 'epoch', ARGV[3])
redis.call('HDEL', KEYS[1], 'view')
local acc = ARGV[4]
local n = tonumber(ARGV[5])
local i = 6
for _ = 1, n do
  local a = ARGV[i]
  redis.call('HSET', KEYS[2], 'p:' .. a, ARGV[i + 1], 's:' .. a, ARGV[i + 2],
    'sv:' .. a, ARGV[i + 3], 'o:' .. a, ARGV[i + 4])
  i = i + 5
end
while i <= #ARGV do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[4], ARGV[i + 2], 's ' .. acc .. ' ' .. ARGV[i])
  i = i + 3
end
return 1
