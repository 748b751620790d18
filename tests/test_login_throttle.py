"""The failed-login limit is atomic and keyed by (account, address), with a looser bound
per address: parallel guesses never exceed it, and guesses from one place never lock the
owner out from another. Through HTTP, with Redis (shared by workers) and in process."""
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from gateway_app.db import Session
from tests.conftest import PASSWORD, build_app, sign_up

ATTACKER = "203.0.113.9"
LIMIT, ADDRESS_LIMIT = 5, 20


@pytest.fixture(params=["redis", "in-process"])
def login_app(request, database_url, redis_url, redis_client):
    app = build_app(database_url, redis_url if request.param == "redis" else None)
    with app.app_context():
        yield app
    Session.remove()
    app.extensions["gateway_engine"].dispose()


def guess(client, email, password="wrong-password", address=ATTACKER, path="/api/v1/auth/token"):
    return client.post(path, json={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def in_parallel(count, send):
    """``count`` requests released together from as many threads; their responses."""
    start = threading.Barrier(count)

    def one(n):
        start.wait()
        try:
            response = send(n)
            return response.status_code, response.get_json()
        finally:
            Session.remove()
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_parallel_guesses_on_one_account_never_exceed_the_limit(login_app):
    client = login_app.test_client()
    email = sign_up(client).user["email"]
    paths = ("/api/v1/auth/token", "/api/v1/auth/login")
    results = in_parallel(24, lambda n: guess(client, email, path=paths[n % 2]))
    statuses = sorted(status for status, _ in results)
    assert statuses.count(401) == LIMIT and statuses.count(429) == 24 - LIMIT, statuses
    assert all(body["layer"] == "login" for status, body in results if status == 429)
    # and the limit holds afterwards, even with the right password, from that address
    assert guess(client, email, PASSWORD).status_code == 429
    # the owner elsewhere is not locked out
    assert guess(client, email, PASSWORD, address="198.51.100.1").status_code == 200


def test_parallel_guesses_across_accounts_from_one_address_never_exceed_its_bound(login_app):
    client = login_app.test_client()
    results = in_parallel(32, lambda n: guess(client, f"ghost-{n}@example.com"))
    statuses = sorted(status for status, _ in results)
    assert statuses.count(401) == ADDRESS_LIMIT and statuses.count(429) == 32 - ADDRESS_LIMIT, statuses
    refused = [body for status, body in results if status == 429]
    assert {(body["limit"], body["policy"]) for body in refused} == {(20, "address")}
    # another address is unaffected
    assert guess(client, "ghost-0@example.com", address="198.51.100.2").status_code == 401


def test_a_success_starts_the_pair_afresh_and_costs_the_address_nothing(login_app):
    client = login_app.test_client()
    email = sign_up(client).user["email"]
    for _ in range(LIMIT - 1):
        assert guess(client, email).status_code == 401
    assert guess(client, email, PASSWORD).status_code == 200
    for _ in range(LIMIT):
        assert guess(client, email).status_code == 401
    assert guess(client, email).status_code == 429
    # the address: 9 failures so far; another account's successes give their places back
    other = sign_up(client).user["email"]
    for _ in range(5):
        assert guess(client, other, PASSWORD).status_code == 200
    for n in range(ADDRESS_LIMIT - 2 * LIMIT + 1):
        assert guess(client, f"other-{n}@example.com").status_code == 401
    assert guess(client, "one-more@example.com").status_code == 429


def test_the_refusal_says_when_to_come_back(login_app):
    client = login_app.test_client()
    for _ in range(LIMIT):
        guess(client, "ghost@example.com")
    refused = guess(client, "ghost@example.com")
    assert refused.status_code == 429
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert 0 < int(refused.headers["Retry-After"]) <= 15 * 60
    assert refused.get_json()["limit"] == 5


def test_with_redis_down_the_count_continues_in_the_process(database_url, private_redis):
    app = build_app(database_url, private_redis.url)
    try:
        with app.app_context():
            client = app.test_client()
            email = sign_up(client).user["email"]
            Session.remove()
            assert guess(client, email).status_code == 401          # counted in Redis
            private_redis.stop()
            statuses = [guess(client, email).status_code for _ in range(LIMIT + 1)]
            # never unlimited: the process counts from zero, so at most the limit more
            assert statuses == [401] * LIMIT + [429], statuses
            Session.remove()
    finally:
        app.extensions["gateway_engine"].dispose()


def test_the_in_process_windows_forget_what_has_left_them(monkeypatch):
    """Guesses from ever new addresses must not make a worker hold ever more windows."""
    from gateway_app.identity import login_throttle
    clock = [1000.0]
    monkeypatch.setattr(login_throttle.time, "monotonic", lambda: clock[0])
    throttle = login_throttle.LoginThrottle("5/15 minutes")
    for n in range(login_throttle.LocalWindows.SWEEP_EVERY - 1):
        throttle.attempt(f"user-{n}@example.com", f"10.0.{n // 256}.{n % 256}")
    assert len(throttle.local.windows) == 2 * (login_throttle.LocalWindows.SWEEP_EVERY - 1)
    clock[0] += 15 * 60 + 1
    throttle.attempt("late@example.com", "192.0.2.1")
    assert len(throttle.local.windows) == 2
