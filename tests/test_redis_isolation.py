"""`make test` with REDIS_URL set never touches data it did not make: it uses database
numbers of its own, refuses one that holds anyone's keys, and empties only what it marked.
Run against a redis-server of the test's own, standing in for a developer's."""
import os
import subprocess
import sys

import pytest
import redis as redis_lib

from tests.support.servers import (OWNER_KEY, ROOT, RedisNotOurs, claim_redis_database,
                                   empty_own_redis_database, worker_redis_url)


def database(url, number):
    return f"{url.rsplit('/', 1)[0]}/{number}"


@pytest.mark.parametrize("worker,given,expected", [
    ("gw0", "redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1"),
    ("gw1", "redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/2"),
    ("gw0", "rediss://:pw@redis.example.com:6380/4", "rediss://:pw@redis.example.com:6380/5"),
    ("gw0", "redis://127.0.0.1:6379", "redis://127.0.0.1:6379/1"),
    (None, "redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1"),   # TEST_WORKERS=0
])
def test_the_tests_never_use_the_urls_own_database(monkeypatch, worker, given, expected):
    if worker is None:
        monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    else:
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    assert worker_redis_url(given) == expected


@pytest.mark.parametrize("url", ["redis+sentinel://h:26379/mymaster", "redis+cluster://h:7000",
                                 "unix:///tmp/redis.sock", "redis://h:6379/main"])
def test_urls_without_a_database_number_of_their_own_are_refused(url):
    with pytest.raises(RedisNotOurs, match="REDIS_URL"):
        worker_redis_url(url)


def test_a_database_holding_someone_elses_keys_is_refused_and_kept(private_redis):
    url = database(private_redis.url, 3)
    developer = redis_lib.Redis.from_url(url)
    developer.set("session:alice", "precious")
    with pytest.raises(RedisNotOurs, match="1 keys the tests did not make"):
        claim_redis_database(url)
    with pytest.raises(RedisNotOurs, match="not marked"):
        empty_own_redis_database(developer)
    assert developer.get("session:alice") == b"precious"


def test_an_empty_database_is_claimed_emptied_and_kept_claimed(private_redis):
    url = database(private_redis.url, 4)
    neighbour = redis_lib.Redis.from_url(database(private_redis.url, 0))
    neighbour.set("app:data", "keep me")
    claim_redis_database(url)
    ours = redis_lib.Redis.from_url(url)
    ours.set("LIMITS:test", 1)
    empty_own_redis_database(ours)
    assert ours.keys("*") == [OWNER_KEY.encode()]
    claim_redis_database(url)   # a later run may take over what an interrupted one left
    assert neighbour.get("app:data") == b"keep me"


def test_an_out_of_range_database_is_refused_with_a_clear_message(private_redis):
    with pytest.raises(RedisNotOurs, match="database number"):
        claim_redis_database(database(private_redis.url, 999))


def test_make_test_refuses_a_redis_url_whose_test_database_holds_data(private_redis):
    """The whole run, as `make test` would start it, stops before any test and says why."""
    developer_url = database(private_redis.url, 0)
    taken = redis_lib.Redis.from_url(database(private_redis.url, 1))
    taken.set("cart:42", "the developer's")
    env = {**os.environ, "REDIS_URL": developer_url}
    env.pop("PYTEST_XDIST_WORKER", None)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                          "tests/test_ops.py::test_security_headers"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "refuses to use REDIS_URL" in run.stdout + run.stderr
    assert "holds 1 keys the tests did not make" in run.stdout + run.stderr
    assert taken.get("cart:42") == b"the developer's"


def test_make_test_on_a_free_database_leaves_every_other_database_alone(private_redis):
    developer = redis_lib.Redis.from_url(database(private_redis.url, 0))
    developer.set("session:bob", "logged in")
    env = {**os.environ, "REDIS_URL": database(private_redis.url, 0)}
    env.pop("PYTEST_XDIST_WORKER", None)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                          "tests/test_ops.py::test_security_headers"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert developer.get("session:bob") == b"logged in"
    assert redis_lib.Redis.from_url(database(private_redis.url, 1)).dbsize() == 0   # left empty
