"""Every PATCH body is a JSON merge patch (RFC 7396), through HTTP; and the helper itself
against the RFC's own examples."""
import json

import pytest

from gateway_app.merge_patch import merge_patch
from tests.conftest import sign_up

COMPANY = "/api/v1/settings/company"
MERGE_PATCH = "application/merge-patch+json"
WEEK = {"mon": [["09:00", "12:00"], ["13:00", "17:00"]], "tue": [["09:00", "17:00"]],
        "sat": [["10:00", "14:00"]]}


# RFC 7396 appendix A, every example
@pytest.mark.parametrize("target,patch,result", [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
])
def test_rfc_7396_examples(target, patch, result):
    before = json.dumps(target)
    assert merge_patch(target, patch) == result
    assert json.dumps(target) == before   # the target is not changed in place


def patch(tenant, path, body, content_type="application/json"):
    return tenant.patch(path, data=json.dumps(body), content_type=content_type)


@pytest.mark.parametrize("content_type", ["application/json", MERGE_PATCH])
def test_business_hours_merge_day_by_day(tenant, content_type):
    assert patch(tenant, COMPANY, {"business_hours": WEEK}, content_type).status_code == 200
    response = patch(tenant, COMPANY, {"business_hours": {"tue": [["10:00", "16:00"]], "sat": None,
                                                          "sun": [["11:00", "13:00"]]}}, content_type)
    assert response.status_code == 200, response.get_json()
    expected = {"mon": WEEK["mon"], "tue": [["10:00", "16:00"]], "sun": [["11:00", "13:00"]]}
    assert response.get_json()["business_hours"] == expected
    assert tenant.get(COMPANY).get_json()["business_hours"] == expected


def test_an_array_replaces_the_whole_day(tenant):
    patch(tenant, COMPANY, {"business_hours": WEEK})
    response = patch(tenant, COMPANY, {"business_hours": {"mon": [["08:00", "10:00"]]}})
    assert response.get_json()["business_hours"]["mon"] == [["08:00", "10:00"]]


def test_null_business_hours_deletes_them_all(tenant):
    patch(tenant, COMPANY, {"business_hours": WEEK})
    response = patch(tenant, COMPANY, {"business_hours": None}, MERGE_PATCH)
    assert response.status_code == 200
    assert response.get_json()["business_hours"] == {}


def test_the_merged_week_is_validated(tenant):
    patch(tenant, COMPANY, {"business_hours": WEEK})
    # Monday's second span would start before the first ends, once merged
    response = patch(tenant, COMPANY, {"business_hours": {"mon": [["13:00", "17:00"], ["09:00", "12:00"]]}})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert set(response.get_json()["errors"]["business_hours"]) == {"mon"}
    assert tenant.get(COMPANY).get_json()["business_hours"] == WEEK   # nothing stored


def test_integrations_merge_and_null_unlinks(tenant):
    linked = patch(tenant, COMPANY, {"integrations": {"retell_agent_id": "agent_abc"}}, MERGE_PATCH)
    assert linked.status_code == 200, linked.get_json()
    response = patch(tenant, COMPANY, {"integrations": {"calcom_event_type_id": "123", "retell_agent_id": None}})
    assert response.get_json()["integrations"] == {"retell_agent_id": None, "calcom_event_type_id": "123",
                                                   "stripe_customer_id": None}
    cleared = patch(tenant, COMPANY, {"integrations": None})
    assert cleared.get_json()["integrations"] == {"retell_agent_id": None, "calcom_event_type_id": None,
                                                  "stripe_customer_id": None}
    # an unlinked account may be linked by another company
    other = sign_up(tenant.client)
    assert patch(other, COMPANY, {"integrations": {"calcom_event_type_id": "123"}}).status_code == 200


@pytest.mark.parametrize("name,value", [
    ("calcom_event_type_id", "demo-free"), ("calcom_event_type_id", "0"),
    ("stripe_customer_id", "customer_1"), ("stripe_customer_id", "cus_"),
    ("retell_agent_id", "agent 1"),
])
def test_malformed_provider_ids_are_refused(tenant, name, value):
    response = patch(tenant, COMPANY, {"integrations": {name: value}})
    assert response.status_code == 422
    assert name in response.get_json()["errors"]["integrations"]


def test_members_that_must_keep_a_value_cannot_be_deleted(tenant):
    for body in ({"name": None}, {"timezone": None}):
        response = patch(tenant, COMPANY, body, MERGE_PATCH)
        assert response.status_code == 422, body
        assert set(response.get_json()["errors"]) == set(body)


def test_customer_patch_null_clears_and_absent_keeps(tenant):
    created = tenant.post("/api/v1/customers", json={"name": "Ann Lee", "email": "ann@example.com",
                                                     "notes": "prefers mornings"}).get_json()
    response = patch(tenant, f"/api/v1/customers/{created['id']}", {"notes": None}, MERGE_PATCH)
    assert response.status_code == 200
    body = response.get_json()
    assert body["notes"] is None and body["email"] == "ann@example.com" and body["name"] == "Ann Lee"
    assert patch(tenant, f"/api/v1/customers/{created['id']}", {"name": None}).status_code == 422


def test_profile_and_team_accept_merge_patch_bodies(tenant):
    response = patch(tenant, "/api/v1/settings/profile", {"name": "Olivia"}, MERGE_PATCH)
    assert response.status_code == 200 and response.get_json()["name"] == "Olivia"
    invited = tenant.post("/api/v1/team/members", json={"email": "mia@example.com", "name": "Mia",
                                                        "role": "member"})
    assert invited.status_code == 201, invited.get_json()
    changed = patch(tenant, f"/api/v1/team/members/{invited.get_json()['id']}", {"role": "viewer"}, MERGE_PATCH)
    assert changed.status_code == 200 and changed.get_json()["role"] == "viewer"


def test_openapi_documents_every_patch_as_a_merge_patch(client):
    document = client.get("/openapi.json").get_json()
    patches = [(path, item["patch"]) for path, item in document["paths"].items() if "patch" in item]
    assert len(patches) >= 6
    for path, operation in patches:
        content = operation["requestBody"]["content"]
        assert set(content) == {"application/json", MERGE_PATCH}, path
        assert content[MERGE_PATCH]["schema"] == content["application/json"]["schema"], path
        assert "RFC 7396" in operation["requestBody"]["description"], path
