"""The operator API for breakers, and the problems a view gets from the integrations."""
import responses

from gateway_app.integrations import client as integration_client
from gateway_app.pipeline.declarations import gateway_policy
from tests.conftest import build_app

ADMIN = {"Authorization": "Bearer admin-token-for-tests"}


def test_list_and_force_breakers(client):
    listed = client.get("/gateway/admin/breakers", headers=ADMIN)
    assert listed.status_code == 200
    services = {row["service"]: row for row in listed.get_json()["data"]}
    assert set(services) >= {"calcom", "retell", "stripe", "sendgrid"}
    assert services["stripe"] == {"service": "stripe", "state": "closed", "failures_in_window": 0,
                                  "failure_threshold": 5, "failure_window": 300, "reset_timeout": 60,
                                  "half_open_probes": 1, "retry_after": 0}

    opened = client.post("/gateway/admin/breakers/calcom", json={"state": "open"}, headers=ADMIN)
    assert opened.status_code == 200
    assert opened.get_json()["state"] == "open" and 59 <= opened.get_json()["retry_after"] <= 60
    closed = client.post("/gateway/admin/breakers/calcom", json={"state": "closed"}, headers=ADMIN)
    assert closed.get_json()["state"] == "closed" and closed.get_json()["retry_after"] == 0


def test_force_rejects_unknown_breakers_and_states(client):
    unknown = client.post("/gateway/admin/breakers/paypal", json={"state": "open"}, headers=ADMIN)
    assert unknown.status_code == 404 and "stripe" in unknown.get_json()["detail"]
    bad = client.post("/gateway/admin/breakers/stripe", json={"state": "half"}, headers=ADMIN)
    assert bad.status_code == 422 and "state" in bad.get_json()["errors"]
    assert client.get("/gateway/admin/breakers").status_code == 401
    assert client.post("/gateway/admin/breakers/stripe", json={"state": "open"},
                       headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_forced_state_is_shared_by_another_app_on_the_same_redis(client, database_url, redis_url):
    other = build_app(database_url, redis_url)
    client.post("/gateway/admin/breakers/retell", json={"state": "open"}, headers=ADMIN)
    with other.app_context():
        seen = other.test_client().get("/gateway/admin/breakers", headers=ADMIN).get_json()["data"]
    assert next(row for row in seen if row["service"] == "retell")["state"] == "open"


def provider_view_app(database_url, redis_url, **config):
    """An app with one extra view that reads from Retell, as a service view would."""
    app = build_app(database_url, redis_url, **config)

    @app.route("/probe-retell/<call_id>")
    @gateway_policy(public=True, upstream="retell")
    def probe_retell(call_id):
        return integration_client("retell").get_call(call_id)
    return app


def test_view_of_an_unconfigured_integration_answers_503_not_configured(database_url, redis_url, redis_client):
    app = provider_view_app(database_url, redis_url)
    with app.app_context():
        response = app.test_client().get("/probe-retell/call_abc")
    assert response.status_code == 503
    problem = response.get_json()
    assert problem["service"] == "retell" and "not configured" in problem["detail"]
    assert "Retry-After" not in response.headers


def test_view_failing_upstream_answers_503_and_recovers(database_url, redis_url, redis_client):
    app = provider_view_app(database_url, redis_url, RETELL_API_KEY="key_test")
    url = "https://api.retellai.com/v2/get-call/call_abc"
    with app.app_context(), responses.RequestsMock() as mocked:
        mocked.get(url, status=500)
        failed = app.test_client().get("/probe-retell/call_abc")
        assert failed.status_code == 503 and failed.get_json()["service"] == "retell"
        assert failed.headers["Retry-After"] == "1"
        mocked.replace(responses.GET, url, json={"call_id": "call_abc", "call_status": "ended"})
        ok = app.test_client().get("/probe-retell/call_abc")
        assert ok.status_code == 200 and ok.get_json()["call_status"] == "ended"


def test_redis_down_breakers_work_per_process_through_http(database_url, private_redis):
    from gateway_app.db import Session
    from gateway_app.models import Company
    from tests.conftest import PROVIDER_KEYS, sign_up
    app = build_app(database_url, private_redis.url, **PROVIDER_KEYS)
    invoices = "https://api.stripe.com/v1/invoices"
    with app.app_context(), responses.RequestsMock() as mocked:
        client = app.test_client()
        tenant = sign_up(client)
        Session.get(Company, tenant.company["id"]).stripe_customer_id = "cus_down"
        Session.commit()
        private_redis.stop()
        mocked.get(invoices, json={"object": "list", "data": [], "has_more": False})
        assert tenant.get("/api/v1/billing/invoices").status_code == 200
        mocked.replace(responses.GET, invoices, status=500)
        statuses = [tenant.get("/api/v1/billing/invoices").status_code for _ in range(6)]
        assert statuses == [503] * 6
        assert len(mocked.calls) == 6              # 1 good + 5 failures; the 6th was refused
        listed = client.get("/gateway/admin/breakers", headers=ADMIN).get_json()["data"]
        assert next(row for row in listed if row["service"] == "stripe")["state"] == "open"
    Session.remove()
    app.extensions["gateway_engine"].dispose()


def test_a_write_to_an_open_upstream_answers_503_without_running_the_view(database_url, redis_url, redis_client):
    app = build_app(database_url, redis_url, RETELL_API_KEY="key_test")
    ran = []

    @app.route("/callback", methods=["POST"])
    @gateway_policy(public=True, upstream="retell")
    def callback():
        ran.append(True)
        return {"queued": True}, 202
    with app.app_context():
        client = app.test_client()
        client.post("/gateway/admin/breakers/retell", json={"state": "open"}, headers=ADMIN)
        response = client.post("/callback", json={})
    assert response.status_code == 503 and ran == []
    assert response.get_json()["service"] == "retell"
    assert 59 <= int(response.headers["Retry-After"]) <= 60
