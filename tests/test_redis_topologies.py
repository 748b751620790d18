"""REDIS_URL naming a Sentinel-managed master or a Cluster: the forms it takes, the key
layout that keeps a request's keys in one slot and spreads companies over the masters,
all-or-nothing limits across a request's two slots, and failovers under load (no 5xx,
no acknowledged write lost). The Cluster and the Sentinel set are started by the tests
(tests/support/redis_topologies.py); `make test-redis-topologies` runs the rate-limit,
cache, session and breaker tests on each as well."""
import concurrent.futures
import threading
import time
import uuid

import pytest
import redis as redis_lib
import requests

from gateway_app.cache.keys import CacheScope
from gateway_app.context import Principal
from gateway_app.identity.principal_cache import _company_version_key, _user_version_key
from gateway_app.identity.store import PREFIX
from gateway_app.migrate import upgrade
from gateway_app.redis_store import BatchedReads, ClusterRoundTrips, make_redis
from gateway_app.redis_urls import CLUSTER, SENTINEL, SINGLE, RedisUrlError, parse_redis_url
from tests.conftest import PASSWORD, build_app, sign_up
from tests.support.redis_topologies import LocalCluster, LocalSentinelSet
from tests.support.servers import Gunicorn

pytestmark = pytest.mark.xdist_group("redis_topologies")
CACHE_APP = "tests.support.cache_app:served_app()"
ADMIN_TOKEN = "admin-token-for-tests"


# -- the URL forms ---------------------------------------------------------------------------
@pytest.mark.parametrize("url, expected", [
    ("redis://h:6379/2", (SINGLE, False, (), None, 0, None, None)),
    ("rediss://:pw@h:6380/0", (SINGLE, True, (), None, 0, None, None)),
    ("redis+sentinel://s1:26379,s2:26380/mymaster", (SENTINEL, False, (("s1", 26379), ("s2", 26380)),
                                                     "mymaster", 0, None, None)),
    ("redis+sentinel://secret@s1:26379/mymaster/3", (SENTINEL, False, (("s1", 26379),), "mymaster", 3,
                                                     None, "secret")),
    ("rediss+sentinel://user:pw@[::1]:26379/m", (SENTINEL, True, (("::1", 26379),), "m", 0, "user", "pw")),
    ("redis+cluster://:pw@n1:7000,n2:7001", (CLUSTER, False, (("n1", 7000), ("n2", 7001)), None, 0, None, "pw")),
    ("rediss+cluster://n1:7000", (CLUSTER, True, (("n1", 7000),), None, 0, None, None)),
])
def test_redis_url_forms(url, expected):
    location = parse_redis_url(url)
    assert (location.topology, location.tls, location.nodes, location.service_name, location.db,
            location.username, location.password) == expected


@pytest.mark.parametrize("url, message", [
    ("memcached://h:11211", "is not one of"),
    ("redis+sentinel://s1:26379", "must end with /service_name"),
    ("redis+sentinel://s1:26379/m/x", "is not a number"),
    ("redis+sentinel://pw@s1/m", "is not host:port"),
    ("redis+cluster://n1:7000/0", "takes no path"),
    ("redis+cluster://", "names no host:port"),
])
def test_a_bad_redis_url_stops_the_start_saying_why(url, message):
    with pytest.raises(RedisUrlError, match=message) as refused:
        make_redis(url)
    assert "pw@" not in str(refused.value)   # a password is never repeated


# -- the servers -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    server = LocalCluster().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sentinels():
    server = LocalSentinelSet().start()
    yield server
    server.stop()


def test_every_form_reaches_its_redis(cluster, sentinels):
    on_cluster = make_redis(cluster.url)
    on_cluster.set("{c1}probe", "cluster", ex=60)
    assert cluster.client().get("{c1}probe") == b"cluster"
    make_redis(sentinels.url + "/1").set("probe", "db 1", ex=60)
    master = redis_lib.Redis(port=sentinels.master(), db=1)
    assert master.get("probe") == b"db 1"
    assert make_redis(sentinels.url).get("probe") is None   # database 0


def request_keys(company_id, user_id):
    """The keys one warm authenticated request of the company reads and writes, but the
    address quotas."""
    principal = Principal(kind="user", company_id=company_id, tier="free", user_id=user_id, role="owner")
    return [PREFIX + _company_version_key(company_id), PREFIX + _user_version_key(company_id, user_id),
            *CacheScope.made_for("calls", principal, per_user=False).generation_keys,
            *CacheScope.made_for("session", principal, per_user=True).generation_keys]


def test_a_companys_keys_share_a_slot_and_companies_spread_over_the_masters(app_on_cluster, cluster):
    stage = app_on_cluster.extensions["gateway"].pipeline.stage("rate_limiting")
    storage = stage.limiter.shared
    client = cluster.client()
    masters = set()
    for company_id in range(1, 61):
        principal = Principal(kind="user", company_id=company_id, tier="free", user_id=company_id * 10,
                              role="owner")
        entries = stage.policies.quota_set("10.0.0.1", principal, "calls", "bookings").entries
        company_keys = [key for key, _limit, _window in entries if "ip:" not in key]
        # limits wraps each key in braces of its own: its tag is "{c<id>", the others' "c<id>"
        limit_slots = {client.keyslot(window_key) for key in company_keys for window_key in storage.window_keys(key)}
        data_slots = {client.keyslot(key) for key in request_keys(company_id, company_id * 10)}
        assert len(limit_slots) == len(data_slots) == 1, company_id
        masters.add(client.get_node_from_key(storage.window_keys(company_keys[0])[1]).port)
        masters.add(client.get_node_from_key(request_keys(company_id, company_id * 10)[0]).port)
    assert len(masters) == 3


@pytest.fixture
def app_on_cluster(cluster, database_url):
    cluster.flush()
    app = build_app(database_url, cluster.url)
    with app.app_context():
        yield app


def counts(app, layer, subject, company_id=None):
    stage = app.extensions["gateway"].pipeline.stage("rate_limiting")
    shared = stage.limiter.shared
    return {quota.name: shared.get_sliding_window(quota.key, quota.window)[2]
            for quota in stage.policies.for_subject(layer, subject, company_id)}


def test_a_request_spanning_two_slots_is_still_all_or_nothing(app_on_cluster, cluster):
    """An authenticated request's address quotas and its company's are two script calls
    on a Cluster; a refusal by either leaves the other as it was."""
    assert isinstance(app_on_cluster.extensions["gateway"].round_trips, ClusterRoundTrips)
    client = app_on_cluster.test_client()
    tenant = sign_up(client)
    company = tenant.company["id"]
    user = f"user:{tenant.user['id']}"
    stage = app_on_cluster.extensions["gateway"].pipeline.stage("rate_limiting")
    burst = next(q for q in stage.policies.for_subject("ip", "10.1.1.1") if q.name == "burst")
    storage = stage.limiter.shared
    cluster.client().set(storage.window_keys(burst.key)[1], 50, px=120_000)   # the burst spent

    def get(address):
        return client.get("/api/v1/no-such-route", headers={"Authorization": f"Bearer {tenant.token}"},
                          environ_base={"REMOTE_ADDR": address})
    before = counts(app_on_cluster, "user", user, company)
    refused = get("10.1.1.1")
    assert refused.status_code == 429 and refused.get_json()["layer"] == "ip"
    assert counts(app_on_cluster, "user", user, company) == before   # given back
    assert get("10.1.1.2").status_code == 404
    assert counts(app_on_cluster, "user", user, company)["user"] == before["user"] + 1

    user_quota = stage.policies.for_subject("user", user, company)[0]
    cluster.client().set(storage.window_keys(user_quota.key)[1], 500, px=7_200_000)
    refused = get("10.1.1.3")
    assert refused.status_code == 429 and refused.get_json()["layer"] == "user"
    assert counts(app_on_cluster, "ip", "10.1.1.3") == {"ip": 0, "burst": 0}   # given back


def test_a_warm_authenticated_request_is_one_round_on_a_cluster(app_on_cluster, monkeypatch):
    """The principal's versions, and its quotas taken ahead in two parts (address,
    company), go to their nodes in one round, as the one MGET and script call do on one
    server."""
    client = app_on_cluster.test_client()
    tenant = sign_up(client)
    headers = {"Authorization": f"Bearer {tenant.token}"}
    round_trips = app_on_cluster.extensions["gateway"].round_trips
    rounds, execute = [], round_trips.execute
    monkeypatch.setattr(round_trips, "execute",
                        lambda commands, **kw: rounds.append(sorted(c[0] for c in commands)) or execute(commands, **kw))
    for _ in range(2):   # the principal cached
        assert client.get("/api/v1/no-such-route", headers=headers).status_code == 404
    # a master this module's failovers promoted has no scripts until its first call
    # loads them (SCRIPT LOAD in that call's round), which a slot map read before the
    # failover was gossiped may leave to a later request: warm until a round loads none
    for _ in range(5):
        rounds.clear()
        client.get("/api/v1/no-such-route", headers=headers)
        if not any("SCRIPT" in commands for commands in rounds):
            break
    rounds.clear()
    for _ in range(3):
        response = client.get("/api/v1/no-such-route", headers=headers)
        assert response.status_code == 404 and "RateLimit" in response.headers
    assert rounds == [["EVALSHA", "EVALSHA", "MGET"]] * 3


def test_a_clusters_round_trips_follow_a_moved_slot(cluster):
    """After a failover the kept connection's node answers MOVED, naming the new master:
    the command goes there in the same call, whatever a slot map read from another node
    would still say, and the slot map keeps it."""
    client = make_redis(cluster.url)
    round_trips = ClusterRoundTrips(client)
    reads = BatchedReads(round_trips)
    key = "gw:identity:ver:{c77}:c"
    client.set(key, "7")
    assert reads.read([key]) == [b"7"]
    master = cluster.master_of(key)
    promoted = cluster.fail_over(master)
    assert reads.read([key]) == [b"7"]
    assert client.get_node_from_key(key).port == promoted == cluster.master_of(key)


# -- failover under load -----------------------------------------------------------------------
class Load:
    """Authenticated cached reads, invalidating writes and logins against ``url``, from
    threads, until stopped; every answer is kept."""

    def __init__(self, url):
        self.url = url
        email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
        signup = requests.post(url + "/api/v1/auth/signup", timeout=10, json={
            "company_name": "Failover Co", "name": "Owner", "email": email, "password": PASSWORD})
        assert signup.status_code == 201, signup.text
        self.email = email
        self.user_id = signup.json()["user"]["id"]
        token = requests.post(url + "/api/v1/auth/token", timeout=10,
                              json={"email": email, "password": PASSWORD}).json()["access_token"]
        self.headers = {"Authorization": f"Bearer {token}"}
        self.answers = []          # (what, status)
        self.details = []          # the bodies of 5xx answers
        self.sessions = []         # session cookies whose login answered 200
        self.last_written = None   # the last name a write was acknowledged for
        self.stopped = threading.Event()
        self.sequence = iter(range(10**9))

    def step(self, worker):
        n = next(self.sequence)
        address = {"X-Forwarded-For": f"10.{worker}.{n // 250 % 250}.{n % 250 + 1}"}
        if worker == 0 and n % 5 == 0:
            name = f"name {n}"
            response = requests.post(self.url + "/test/cache/events", timeout=10,
                                     headers={**self.headers, **address},
                                     json={"event": "settings.changed", "name": name})
            if response.status_code == 200:
                self.last_written = name
            return "write", response.status_code
        if worker == 1 and n % 7 == 0:
            response = requests.post(self.url + "/api/v1/auth/login", timeout=10, headers=address,
                                     json={"email": self.email, "password": PASSWORD})
            if response.status_code == 200:
                self.sessions.append(response.cookies.get("gw_session"))
            elif response.status_code >= 500:
                self.details.append(response.text)
            return "login", response.status_code
        response = requests.get(self.url + "/test/cache/settings", timeout=10,
                                headers={**self.headers, **address})
        return "read", response.status_code

    def run(self, worker):
        while not self.stopped.is_set():
            self.answers.append(self.step(worker))

    def during(self, action, workers=4):
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            running = [pool.submit(self.run, worker) for worker in range(workers)]
            time.sleep(1.5)
            result = action()
            time.sleep(2.0)
            self.stopped.set()
            for future in running:
                future.result()
        return result


def serve(tmp_path, url):
    database = f"sqlite:///{tmp_path}/served.db"
    upgrade(database)
    return Gunicorn({"DATABASE_URL": database, "REDIS_URL": url, "TRUSTED_PROXY_HOPS": "1",
                     "SECRET_KEY": "gunicorn-test-secret-0123456789abcdef", "GATEWAY_ACCESS_LOG": "0",
                     "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN},
                    workers=2, app_uri=CACHE_APP).start()


def reset_user_limits(server, user_id):
    """The user's hourly quotas reset through the admin API (kept under its company's tag)."""
    for layer, key in (("user", f"user:{user_id}"), ("endpoint", f"user:{user_id}:settings")):
        reset = requests.delete(f"{server.url}/gateway/admin/rate-limits/{layer}/{key}", timeout=10,
                                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert reset.status_code == 200, reset.text


def assert_nothing_lost(load, server):
    errors = [(what, status) for what, status in load.answers if status >= 500]
    assert not errors, (errors[:10], load.details[:3])
    assert {what for what, _status in load.answers} == {"read", "write", "login"}
    for first in range(0, len(load.sessions), 25):   # every acknowledged session is still there
        reset_user_limits(server, load.user_id)   # the load, then the checks, spend them
        for n, cookie in enumerate(load.sessions[first:first + 25], start=first):
            me = requests.get(server.url + "/api/v1/settings/profile", cookies={"gw_session": cookie},
                              headers={"X-Forwarded-For": f"10.250.{n // 250}.{n % 250 + 1}"}, timeout=10)
            assert me.status_code == 200, me.text
    name = requests.get(server.url + "/test/cache/settings", headers=load.headers, timeout=10).json()["name"]
    assert name == load.last_written   # no acknowledged invalidation lost


@pytest.mark.gunicorn
def test_a_cluster_master_failover_under_load(tmp_path, cluster):
    server = serve(tmp_path, cluster.url)
    try:
        load = Load(server.url)
        company_key = PREFIX + _company_version_key(1)
        master = cluster.master_of(company_key)
        promoted = load.during(lambda: cluster.fail_over(master))
        assert cluster.master_of(company_key) == promoted != master
        assert_nothing_lost(load, server)
    finally:
        server.stop()


@pytest.mark.gunicorn
def test_a_sentinel_failover_under_load(tmp_path, sentinels):
    server = serve(tmp_path, sentinels.url)
    try:
        load = Load(server.url)
        before = sentinels.master()
        assert load.during(sentinels.fail_over) != before
        assert_nothing_lost(load, server)
    finally:
        server.stop()
