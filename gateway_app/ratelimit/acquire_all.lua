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
-- A request may also carry a precondition and reads, so that a warm request needs no
-- other round trip: check keys that must still hold the values the caller expects (the
-- versions of the principal it cached; nothing is taken when one differs), and keys
-- whose values later stages need (the cache's generation tokens).
--
-- KEYS: for each request: its check keys, its read keys, then for each limit: previous, current
-- ARGV: request count, then for each request: its limit count, check count, read count,
--       the expected value of each check key ('' for absent), then per limit: limit, expiry_seconds
-- Returns, for each request: the value of each read key, then 1 (taken), 0 (refused) or
--          -1 (a check key differs: nothing taken, nothing more reported), then per limit:
--          weighted_count, previous_count, previous_ttl_ms, current_count, current_ttl_ms,
--          as they are after that request.

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

local function holds(first_key, first_arg, count)
    for i = 1, count do
        if (redis.call('get', KEYS[first_key + i - 1]) or '') ~= ARGV[first_arg + i - 1] then
            return false
        end
    end
    return true
end

local result = {}
local next_key, next_arg = 1, 2
for _ = 1, tonumber(ARGV[1]) do
    local count = tonumber(ARGV[next_arg])
    local checks = tonumber(ARGV[next_arg + 1])
    local reads = tonumber(ARGV[next_arg + 2])
    for i = 1, reads do
        result[#result + 1] = redis.call('get', KEYS[next_key + checks + i - 1])
    end
    local first_limit_key = next_key + checks + reads
    local first_limit_arg = next_arg + 3 + checks
    if holds(next_key, next_arg + 3, checks) then
        acquire(first_limit_key, first_limit_arg, count, result)
    else
        result[#result + 1] = -1
    end
    next_key = first_limit_key + 2 * count
    next_arg = first_limit_arg + 2 * count
end
return result
