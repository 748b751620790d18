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
-- Returns, for each request: 1 (taken) or 0 (refused), then per limit: weighted_count,
--          previous_count, previous_ttl_ms, current_count, current_ttl_ms, as they are
--          after that request.
--
-- Nothing else runs in Redis while a script does, and its clock stands still meanwhile:
-- a key read once is known for the rest of the call. A batch is mostly the same few
-- callers again and again, so each key is read once per call (not once per request),
-- the counts taken are kept here, and each counter is written once, at the end.

local windows = {}        -- current key -> {previous count, previous TTL, current count,
                          --                 current TTL, taken by this call, key is new}
local written = {}        -- current keys in the order first met

local function window_of(previous_key, current_key, expiry)
    local window = windows[current_key]
    if window then
        return window
    end
    local current_ttl = tonumber(redis.call('pttl', current_key))
    if current_ttl > 0 and current_ttl < expiry then
        redis.call('rename', current_key, previous_key)
        current_ttl = current_ttl + expiry
        redis.call('set', current_key, 0, 'PX', current_ttl)
    end
    current_ttl = math.max(current_ttl, 0)   -- 0: no current key (or one without expiry)
    window = {tonumber(redis.call('get', previous_key)) or 0,
              math.max(tonumber(redis.call('pttl', previous_key)), 0),
              tonumber(redis.call('get', current_key)) or 0,
              current_ttl, 0, false}
    windows[current_key] = window
    written[#written + 1] = current_key
    return window
end

local result, n = {}, 0   -- the reply, and how many values it holds

local function put(value)
    n = n + 1
    result[n] = value
end

-- reused by every request: the windows and weighted counts of its limits
local taking_windows, taking_weighted, taking_expiry = {}, {}, {}

local function acquire(first_key, first_arg, count)
    local allowed = 1
    for i = 1, count do
        local expiry = tonumber(ARGV[first_arg + 2 * i - 1]) * 1000
        local window = window_of(KEYS[first_key + 2 * i - 2], KEYS[first_key + 2 * i - 1], expiry)
        local weighted = math.floor(window[1] * window[2] / expiry) + window[3]
        if weighted + 1 > tonumber(ARGV[first_arg + 2 * i - 2]) then
            allowed = 0
        end
        taking_windows[i], taking_weighted[i], taking_expiry[i] = window, weighted, expiry
    end

    put(allowed)
    for i = 1, count do
        local window, weighted = taking_windows[i], taking_weighted[i]
        if allowed == 1 then
            if window[4] == 0 then   -- a new window (an expiry-less key left by hand gets one too)
                window[4] = taking_expiry[i] * 2
                window[6] = true
            end
            window[3] = window[3] + 1
            window[5] = window[5] + 1
            weighted = weighted + 1
        end
        put(weighted)
        put(window[1])
        put(window[2])
        put(window[3])
        put(window[4])
    end
end

local next_key, next_arg = 1, 2
for _ = 1, tonumber(ARGV[1]) do
    local count = tonumber(ARGV[next_arg])
    acquire(next_key, next_arg + 1, count)
    next_key = next_key + 2 * count
    next_arg = next_arg + 1 + 2 * count
end

for _, current_key in ipairs(written) do
    local window = windows[current_key]
    if window[6] then
        redis.call('set', current_key, window[3], 'PX', window[4])
    elseif window[5] > 0 then
        redis.call('incrby', current_key, window[5])
    end
end
return result
