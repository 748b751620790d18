"""Failed logins are throttled per (account, address), and more loosely per address
(authentication.failed_login_limit; the per-address bound is ADDRESS_FACTOR times it).

Per (account, address), not per account: five wrong guesses from one place must not lock
the real owner out everywhere else. The looser bound per address stops one place from
trying many accounts. The account is the normalised email whether or not it exists, so
the throttle itself reveals nothing.

Atomic: an attempt takes its place in both windows before the password is checked, in
one Redis script (or under one lock in the process), and only a success gives its places
back. A check followed by a count, as before, let every guess that arrived while others
were being verified through, so parallel guesses exceeded the limit. Each window is a
sorted set of attempt times (a moving window: no boundary lets twice the limit through).

Counted in Redis when configured (shared by all workers); if Redis fails the count
continues in this process rather than letting unlimited guesses through.
"""
import hashlib
import logging
import math
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass

from limits import parse

log = logging.getLogger("gateway.identity")

# The per-address bound, in multiples of the per-(account, address) limit: one address
# (an office behind one NAT) may fail this many times more, across all its accounts.
ADDRESS_FACTOR = 4

# KEYS: the (account, address) window, the address window.
# ARGV: window (ms), limit of each key, this attempt's member.
# Returns {0, 0} when the attempt took its place in both, else {ms to wait, key index}.
RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local wait, blocked = 0, 0
for i = 1, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local limit = tonumber(ARGV[i + 1])
  local count = redis.call('ZCARD', KEYS[i])
  if count >= limit then
    -- a place frees when the attempt count - limit (0-based, oldest first) leaves the window
    local entry = redis.call('ZRANGE', KEYS[i], count - limit, count - limit, 'WITHSCORES')
    local left = tonumber(entry[2]) + window - now
    if left > wait then wait, blocked = left, i end
  end
end
if blocked > 0 then return {math.max(wait, 1), blocked} end
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[i], window)
end
return {0, 0}
"""


@dataclass(frozen=True)
class Attempt:
    keys: tuple      # (pair key, address key)
    member: str
    shared: bool     # counted in Redis (else in this process)


class Throttled(Exception):
    """Refused: ``limit`` failed logins per ``window`` seconds spent, for ``policy``
    ("account": this account from this address; "address": this address)."""

    def __init__(self, retry_after, limit, window, policy):
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after
        self.limit = limit
        self.window = window
        self.policy = policy


class LocalWindows:
    """The same windows in this process, under one lock."""

    # every this many attempts, windows with nothing left in them are dropped, so that
    # guesses from ever new addresses or accounts cannot make the process hold ever more
    SWEEP_EVERY = 1000

    def __init__(self):
        self.lock = threading.Lock()
        self.windows = {}
        self.since_sweep = 0

    def sweep(self, now, window):
        self.windows = {key: times for key, times in self.windows.items()
                        if times and times[-1][0] > now - window}
        self.since_sweep = 0

    def reserve(self, keys, limits, window, member):
        now = time.monotonic()
        with self.lock:
            self.since_sweep += 1
            if self.since_sweep >= self.SWEEP_EVERY:
                self.sweep(now, window)
            wait, blocked = 0.0, None
            entries = []
            for index, (key, limit) in enumerate(zip(keys, limits)):
                times = self.windows.setdefault(key, deque())
                while times and times[0][0] <= now - window:
                    times.popleft()
                if len(times) >= limit:
                    left = times[len(times) - limit][0] + window - now
                    if left > wait:
                        wait, blocked = left, index
                entries.append(times)
            if blocked is not None:
                return wait, blocked
            for times in entries:
                times.append((now, member))
            return 0.0, None

    def give_back(self, keys, member, clear_first):
        with self.lock:
            for index, key in enumerate(keys):
                if index == 0 and clear_first:
                    self.windows.pop(key, None)
                    continue
                times = self.windows.get(key)
                if times is not None:
                    self.windows[key] = deque(entry for entry in times if entry[1] != member)


class LoginThrottle:
    def __init__(self, limit, redis_client=None):
        item = parse(limit)
        self.limit = limit
        self.window = item.get_expiry()            # seconds
        self.limits = (item.amount, item.amount * ADDRESS_FACTOR)
        self.local = LocalWindows()
        self.redis = redis_client
        self.script = redis_client.register_script(RESERVE) if redis_client is not None else None

    @staticmethod
    def keys(account, address):
        """(pair window, address window); the account is hashed (no email in Redis's keys),
        and both keys share the address as hash tag, so one script may touch both on Redis
        Cluster too."""
        address = address or "unknown"
        account_digest = hashlib.sha256(account.encode()).hexdigest()[:32]
        return (f"gw:login:{{{address}}}:account:{account_digest}", f"gw:login:{{{address}}}:all")

    def attempt(self, account, address):
        """Take this attempt's place in both windows, or raise Throttled."""
        keys = self.keys(account, address)
        member = uuid.uuid4().hex
        if self.script is not None:
            try:
                wait_ms, blocked = self.script(keys=keys, args=[
                    int(self.window * 1000), self.limits[0], self.limits[1], member])
                self.refuse_if(int(wait_ms) / 1000.0, int(blocked) - 1 if int(blocked) else None)
                return Attempt(keys, member, shared=True)
            except Throttled:
                raise
            except Exception as exc:  # the redis client's errors vary by driver and version
                log.warning("login throttle storage failed (%s); counting in process",
                            type(exc).__name__)
        wait, blocked = self.local.reserve(keys, self.limits, self.window, member)
        self.refuse_if(wait, blocked)
        return Attempt(keys, member, shared=False)

    def refuse_if(self, wait, blocked):
        if blocked is not None:
            raise Throttled(max(1, math.ceil(wait)), self.limits[blocked], int(self.window),
                            "account" if blocked == 0 else "address")

    def succeeded(self, attempt):
        """The owner got in: this pair starts afresh, and the address gets its place back."""
        self._give_back(attempt, clear_pair=True)

    def abandoned(self, attempt):
        """Neither success nor failure (the check could not be made): give both places back."""
        self._give_back(attempt, clear_pair=False)

    def _give_back(self, attempt, clear_pair):
        if attempt.shared:
            try:
                pipe = self.redis.pipeline(transaction=True)
                if clear_pair:
                    pipe.delete(attempt.keys[0])
                else:
                    pipe.zrem(attempt.keys[0], attempt.member)
                pipe.zrem(attempt.keys[1], attempt.member)
                pipe.execute()
                return
            except Exception as exc:  # the attempt stays counted until its window ends
                log.warning("login throttle storage failed (%s) giving an attempt back",
                            type(exc).__name__)
                return
        self.local.give_back(attempt.keys, attempt.member, clear_pair)
