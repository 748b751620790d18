"""The shared Redis calls of a worker (gateway_app/redis_store.py): one batch in flight,
answers never older than their callers, and recovery from a dropped connection."""
import os
import threading
import time

import pytest
import redis

from gateway_app.ratelimit.storage import BatchedRedisStorage
from gateway_app.redis_store import (BatchedReads, CoalescedCalls, KeptConnection, SharedRoundTrips,
                                     make_redis)


def test_one_batch_is_in_flight_at_a_time_and_later_callers_wait_for_the_next():
    in_flight, most_in_flight, batch_sizes = [0], [0], []
    lock = threading.Lock()

    def run_batch(items):
        with lock:
            in_flight[0] += 1
            most_in_flight[0] = max(most_in_flight[0], in_flight[0])
        time.sleep(0.01)   # a round trip, during which callers keep arriving
        with lock:
            in_flight[0] -= 1
        batch_sizes.append(len(items))
        return [item * 2 for item in items]

    calls = CoalescedCalls(run_batch)
    answers = {}

    def caller(index):
        answers[index] = calls.call(index)

    threads = [threading.Thread(target=caller, args=(index,)) for index in range(60)]
    for thread in threads:
        thread.start()
        time.sleep(0.0005)
    for thread in threads:
        thread.join()
    assert answers == {index: index * 2 for index in range(60)}
    assert most_in_flight[0] == 1
    # callers that arrived during a round trip shared the next one
    assert len(batch_sizes) < 60 and max(batch_sizes) > 1


def test_an_item_that_failed_fails_its_caller_alone():
    calls = CoalescedCalls(lambda items: [ValueError(item) if item == "bad" else item for item in items])
    with pytest.raises(ValueError):
        calls.call("bad")
    assert calls.call("good") == "good"


def test_a_failed_batch_fails_its_callers_and_the_next_batch_runs():
    attempts = []

    def run_batch(items):
        attempts.append(items)
        if len(attempts) == 1:
            raise redis.ConnectionError("Redis went away")
        return items

    calls = CoalescedCalls(run_batch)
    with pytest.raises(redis.ConnectionError):
        calls.call("first")
    assert calls.call("second") == "second"


def test_shared_reads_recover_after_redis_dropped_the_connection(redis_url, redis_client):
    reads = BatchedReads(SharedRoundTrips(KeptConnection(make_redis(redis_url))))
    key = f"gw:test:dropped:{os.getpid()}:{time.monotonic_ns()}"
    redis_client.set(key, "before", ex=60)
    assert reads.read([key]) == [b"before"]
    kept = reads.round_trips.connection.execute("CLIENT", "ID")
    assert redis_client.client_kill_filter(_id=kept) == 1
    redis_client.set(key, "after", ex=60)
    try:
        reads.read([key])            # the dropped socket may surface once ...
    except redis.ConnectionError:
        pass
    assert reads.read([key]) == [b"after"]   # ... and the next read reconnects


def test_the_kept_connection_answers_server_errors_without_reconnecting(redis_url):
    connection = KeptConnection(make_redis(redis_url))
    connection.execute("PING")
    kept = connection.connection
    with pytest.raises(redis.ResponseError):
        connection.execute("NOSUCHCOMMAND")
    assert connection.connection is kept and connection.execute("PING") in (b"PONG", "PONG", True)


def test_a_forked_child_opens_its_own_connection(redis_url):
    connection = KeptConnection(make_redis(redis_url))
    connection.execute("PING")
    parent_socket = connection.connection
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:   # the child: a fresh connection, the parent's left alone
        try:
            connection.execute("SET", "gw:test:forked", "child", "EX", "60")
            ok = connection.connection is not parent_socket
            os.write(write_end, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    assert os.read(read_end, 1) == b"1"
    # the parent's connection still works: the child never touched its socket
    assert connection.execute("GET", "gw:test:forked") == b"child"


class RecordingConnection(KeptConnection):
    """The real connection, recording what each round trip carried."""

    def __init__(self, client):
        super().__init__(client)
        self.rounds = []

    def execute_all(self, commands):
        self.rounds.append([command[0] for command in commands])
        return super().execute_all(commands)


def unique(name):
    return f"gw:test:{name}:{os.getpid()}:{time.monotonic_ns()}"


def test_reads_and_acquisitions_of_one_round_share_one_round_trip(redis_url, redis_client):
    client = make_redis(redis_url)
    connection = RecordingConnection(client)
    round_trips = SharedRoundTrips(connection)
    reads, storage = BatchedReads(round_trips), BatchedRedisStorage(client, round_trips)
    redis_client.script_load(storage.script)   # else the first round also loads it
    key = unique("round")
    redis_client.set(key, "value", ex=60)
    quota = ((unique("quota"), 2, 60),)
    answers = round_trips.run_round([(reads, [key]), (storage, quota), (reads, [key, unique("absent")]),
                                     (storage, quota), (storage, quota)])
    assert connection.rounds == [["MGET", "EVALSHA"]]
    assert answers[0] == [b"value"] and answers[2] == [b"value", None]
    assert [answer.allowed for answer in answers[1::2] + answers[4:]] == [True, True, False]


def test_a_command_refused_by_redis_fails_its_kind_alone(redis_url, redis_client):
    class Refused:
        """A kind whose command Redis refuses (the key holds a string, not a hash)."""
        @staticmethod
        def command(items):
            return ("HGET", key, "field")

        @staticmethod
        def answers(items, command, reply):
            raise AssertionError("an error reply is not an answer")

    round_trips = SharedRoundTrips(KeptConnection(make_redis(redis_url)))
    reads = BatchedReads(round_trips)
    key = unique("refused")
    redis_client.set(key, "a string", ex=60)
    refused, read = round_trips.run_round([(Refused, None), (reads, [key])])
    assert isinstance(refused, redis.ResponseError)
    assert read == [b"a string"]
    with pytest.raises(redis.ResponseError):
        round_trips.call(Refused, None)
    assert reads.read([key]) == [b"a string"]
