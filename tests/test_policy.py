"""conf/gateway.yaml is validated at start-up, naming the offending key."""
import copy
import subprocess
import sys

import pytest
import yaml

from gateway_app.policy import DEFAULT_PATH, PolicyError, load_policy, validate_policy
from tests.support.servers import ROOT


@pytest.fixture
def raw_policy():
    with open(DEFAULT_PATH) as handle:
        return yaml.safe_load(handle)


def test_shipped_policy_holds_the_seed_numbers():
    policy = load_policy()
    assert {t: v["multiplier"] for t, v in policy["tiers"].items()} == {
        "free": 1, "pro": 3, "enterprise": 10, "unlimited": 50}
    layers = policy["rate_limiting"]["layers"]
    assert layers["ip"]["limits"] == ["1000/hour", "50/minute"]
    assert layers["user"]["limits"] == ["500/hour"]
    assert layers["company"]["limits"] == ["2000/hour"]
    assert layers["endpoint"]["services"] == {
        "dashboard": "100/hour", "calls": "300/hour", "appointments": "200/hour",
        "customers": "150/hour", "analytics": "50/hour", "settings": "30/hour",
        "billing": "20/hour"}
    ttls = {n: v["ttl"] for n, v in policy["caching"]["namespaces"].items()}
    assert ttls["dashboard"] == 60 and ttls["calls"] == 30 and ttls["settings"] == 300
    assert ttls["customers"] == 600 and ttls["appointments"] == 300
    assert ttls["analytics"] == 900 and ttls["company_settings"] == 1800
    breaker = policy["circuit_breaker"]["defaults"]
    assert (breaker["failure_threshold"], breaker["failure_window"], breaker["reset_timeout"]) == (5, 300, 60)
    assert policy["service_discovery"]["health_check"]["interval"] == 30
    files = policy["files"]
    assert (files["export_retention_days"], files["backups_keep"]) == (7, 14)


def test_a_policy_without_a_files_section_has_its_defaults(raw_policy):
    raw_policy.pop("files")
    files = validate_policy(raw_policy)["files"]
    assert files["export_retention_days"] == 7
    assert files["attachments"]["max_bytes"] == {"free": 5 * 1024 * 1024}
    assert "application/pdf" in files["attachments"]["content_types"]


@pytest.mark.parametrize("mutate, key", [
    (lambda p: p["rate_limiting"]["layers"]["ip"].update(limits=["lots/hour"]), "rate_limiting.layers.ip.limits"),
    (lambda p: p["tiers"]["pro"].update(multiplier=0), "tiers.pro.value.multiplier"),
    (lambda p: p["caching"]["namespaces"].pop("calls") and p["caching"]["invalidation"].update(
        {"calls.created": ["calls"]}), "caching.invalidation.calls.created"),
    (lambda p: p["circuit_breaker"]["defaults"].pop("reset_timeout"), "circuit_breaker.defaults.reset_timeout"),
    (lambda p: p.pop("metrics"), "metrics"),
    (lambda p: p["caching"]["namespaces"]["calls"].update(tier="l3"), "caching.namespaces.calls.value.tier"),
    (lambda p: p["rate_limiting"].update(surprise=1), "rate_limiting.surprise"),
    # settings nothing read are gone; a file that still has them is told so
    (lambda p: p["rate_limiting"].update(strategy="sliding-window-counter"), "rate_limiting.strategy"),
    (lambda p: p["service_discovery"].update(load_balancing="round_robin"),
     "service_discovery.load_balancing"),
    # added to every response without werkzeug's check (responses.append_made_headers)
    (lambda p: p["transform"]["security_headers"].update({"X-Frame-Options": "DENY\r\nSet-Cookie: a=1"}),
     "transform.security_headers.X-Frame-Options.value"),
    (lambda p: p["transform"]["security_headers"].update({"X-Bad: 1\r\nX": "1"}),
     "transform.security_headers"),
    (lambda p: p["files"]["attachments"]["max_bytes"].update(platinum=1), "files.attachments.max_bytes.platinum"),
    (lambda p: p["files"]["attachments"]["max_bytes"].pop("free"), "files.attachments.max_bytes.free"),
    (lambda p: p["files"]["attachments"]["content_types"].append("text/html"),
     "files.attachments.content_types"),
    (lambda p: p["files"]["attachments"]["content_types"].append("PDF"), "files.attachments.content_types"),
    (lambda p: p["files"].update(export_retention_days=0), "files.export_retention_days"),
    (lambda p: p["files"].update(backups_keep="all"), "files.backups_keep"),
])
def test_invalid_policy_names_the_key(raw_policy, mutate, key):
    broken = copy.deepcopy(raw_policy)
    mutate(broken)
    with pytest.raises(PolicyError) as error:
        validate_policy(broken)
    assert key in str(error.value)


def test_each_stage_section_schema_sits_beside_its_stage(app):
    from gateway_app.policy import PolicySchema
    sections = PolicySchema().fields
    stages = app.extensions["gateway"].pipeline.stages
    assert [stage.section for stage in stages if stage.section] == [
        "metrics", "transform", "cors", "authentication", "rate_limiting", "caching",
        "circuit_breaker", "transforms", "service_discovery"]
    for stage in stages:
        if stage.section is not None:
            assert sections[stage.section].nested.__module__ == stage.__module__, stage.section


def test_gunicorn_refuses_to_start_with_a_bad_policy(tmp_path, raw_policy):
    raw_policy["rate_limiting"]["layers"]["user"]["limits"] = ["five hundred"]
    bad = tmp_path / "gateway.yaml"
    bad.write_text(yaml.safe_dump(raw_policy))
    import os
    env = dict(os.environ, GATEWAY_CONFIG=str(bad), PORT="0", GATEWAY_BIND="127.0.0.1")
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "conf/gunicorn.conf.py",
                             "wsgi:app"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "rate_limiting.layers.user.limits" in result.stderr
    assert "Traceback" not in result.stderr
