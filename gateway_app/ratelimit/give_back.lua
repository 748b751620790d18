-- Gives back the unit one request took of each of its limits (acquire_all.lua) and never
-- used: the rate-limiting stage takes a cached principal's quotas ahead, in the round trip
-- that confirms the principal, and returns them when the request does not spend them (the
-- principal had changed, or the request was refused before the rate-limiting stage).
--
-- KEYS: for each limit: previous, current
-- ARGV: for each limit: the current window's TTL in ms as the acquisition reported it
-- A current key whose TTL grew since then is a new window: the unit is in the previous one.

for i = 1, #ARGV do
    local previous_key, current_key = KEYS[2 * i - 1], KEYS[2 * i]
    local key = current_key
    if tonumber(redis.call('pttl', current_key)) > tonumber(ARGV[i]) then
        key = previous_key
    end
    if (tonumber(redis.call('get', key)) or 0) > 0 then
        redis.call('decr', key)
    end
end
return 1
