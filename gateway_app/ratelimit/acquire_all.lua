-- All-or-nothing acquisition of several sliding-window-counter limits in one round trip.
--
-- The window arithmetic is that of limits' acquire_sliding_window.lua (flask-limiter's
-- storage layer), so counts written here read the same through limits' strategies:
-- the current window's key lives twice the window; once its TTL falls below one window
-- it becomes the previous window, whose count is weighted by the fraction still to run.
--
-- KEYS: previous_1, current_1, previous_2, current_2, ...
-- ARGV: limit_1, expiry_seconds_1, limit_2, expiry_seconds_2, ...
-- Returns {allowed (1|0), then per limit: weighted_count, previous_count, previous_ttl_ms,
--          current_count, current_ttl_ms} with the counts as they are after this call.

local count = #KEYS / 2
local windows = {}
local allowed = 1

for i = 1, count do
    local previous_key, current_key = KEYS[2 * i - 1], KEYS[2 * i]
    local limit = tonumber(ARGV[2 * i - 1])
    local expiry = tonumber(ARGV[2 * i]) * 1000

    local current_ttl = tonumber(redis.call('pttl', current_key))
    if current_ttl > 0 and current_ttl < expiry then
        redis.call('rename', current_key, previous_key)
        redis.call('set', current_key, 0, 'PX', current_ttl + expiry)
    end

    local previous_count = tonumber(redis.call('get', previous_key)) or 0
    local previous_ttl = math.max(tonumber(redis.call('pttl', previous_key)), 0)
    local current_count = tonumber(redis.call('get', current_key)) or 0
    current_ttl = math.max(tonumber(redis.call('pttl', current_key)), 0)

    local weighted = math.floor(previous_count * previous_ttl / expiry) + current_count
    if weighted + 1 > limit then
        allowed = 0
    end
    windows[i] = {weighted, previous_count, previous_ttl, current_count, current_ttl, expiry}
end

if allowed == 1 then
    for i = 1, count do
        local current_key = KEYS[2 * i]
        local window = windows[i]
        if redis.call('exists', current_key) == 1 then
            redis.call('incrby', current_key, 1)
        else
            redis.call('set', current_key, 1, 'PX', window[6] * 2)
            window[5] = window[6] * 2
        end
        window[1] = window[1] + 1
        window[4] = window[4] + 1
    end
end

local result = {allowed}
for i = 1, count do
    local window = windows[i]
    for j = 1, 5 do
        result[#result + 1] = window[j]
    end
end
return result
