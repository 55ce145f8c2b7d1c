-- KEYS meta leases activity; ARGV agent.
-- The activity reports (`at|idle_ms`, or '' for none) of the agent's live leases.
local out = {}
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local agent, dl = string.match(all[i + 1], '^(.*)|%a|(%-?%d+)|')
  if agent == ARGV[1] and tonumber(dl) > now then
    table.insert(out, redis.call('HGET', KEYS[3], all[i]) or '')
  end
end
return out
