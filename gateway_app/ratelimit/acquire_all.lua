-- All-or-nothing acquisition of several sliding-window-counter limits, for one request or
-- for several requests of one worker sent together (one round trip for all of them).
--
-- The window arithmetic is that of limits' acquire_sliding_window.lua (flask-limiter's
-- storage layer), so counts written here read the same through limits' strategies:
-- the current window's key lives twice the window; once its TTL falls below one window
-- it becomes the previous window, whose count is weighted by the fraction still to run.
-- Requests are taken in order, each all-or-nothing, exactly as if they had arrived one
-- after the other.
--
-- KEYS: for each request, for each of its limits: previous, current
-- ARGV: request count, then for each request: its limit count, then per limit: limit, expiry_seconds
-- Returns, for each request: allowed (1|0), then per limit: weighted_count, previous_count,
--          previous_ttl_ms, current_count, current_ttl_ms, as they are after that request.

local function acquire(first_key, first_arg, count, result)
    local windows = {}
    local allowed = 1
    for i = 1, count do
        local previous_key, current_key = KEYS[first_key + 2 * i - 2], KEYS[first_key + 2 * i - 1]
        local limit = tonumber(ARGV[first_arg + 2 * i - 2])
        local expiry = tonumber(ARGV[first_arg + 2 * i - 1]) * 1000

        local current_ttl = tonumber(redis.call('pttl', current_key))
        if current_ttl > 0 and current_ttl < expiry then
            redis.call('rename', current_key, previous_key)
            current_ttl = current_ttl + expiry
            redis.call('set', current_key, 0, 'PX', current_ttl)
        end
        current_ttl = math.max(current_ttl, 0)   -- 0: no current key (or one without expiry)

        local previous_count = tonumber(redis.call('get', previous_key)) or 0
        local previous_ttl = math.max(tonumber(redis.call('pttl', previous_key)), 0)
        local current_count = tonumber(redis.call('get', current_key)) or 0

        local weighted = math.floor(previous_count * previous_ttl / expiry) + current_count
        if weighted + 1 > limit then
            allowed = 0
        end
        windows[i] = {weighted, previous_count, previous_ttl, current_count, current_ttl, expiry}
    end

    if allowed == 1 then
        for i = 1, count do
            local current_key = KEYS[first_key + 2 * i - 1]
            local window = windows[i]
            if window[5] > 0 then
                redis.call('incrby', current_key, 1)
            else   -- a new window (an expiry-less key left by hand gets one too)
                redis.call('set', current_key, 1, 'PX', window[6] * 2)
                window[5] = window[6] * 2
            end
            window[1] = window[1] + 1
            window[4] = window[4] + 1
        end
    end

    result[#result + 1] = allowed
    for i = 1, count do
        for j = 1, 5 do
            result[#result + 1] = windows[i][j]
        end
    end
end

local result = {}
local next_key, next_arg = 1, 2
for _ = 1, tonumber(ARGV[1]) do
    local count = tonumber(ARGV[next_arg])
    acquire(next_key, next_arg + 1, count, result)
    next_key = next_key + 2 * count
    next_arg = next_arg + 1 + 2 * count
end
return result
