"""schemathesis over the whole /openapi.json, every check, against a real gateway
(gunicorn on loopback, tests/support/live_gateway.py): zero failures.

A bounded run (few examples per operation; its coverage phase still sends every
documented status's boundary cases); bench/openapi_fuzz.py makes the full run.
tests/schemathesis.toml says what the run authenticates with and which answers two
checks take as expected, and why.
"""
import re

import pytest

from tests.support.live_gateway import LiveGateway, generous_login_throttle, run_schemathesis

pytestmark = [pytest.mark.gunicorn, pytest.mark.timeout(600)]


def test_schemathesis_finds_nothing_the_document_does_not_say():
    with LiveGateway(policy_changes=[generous_login_throttle]) as gateway:
        run = run_schemathesis(gateway, 3, "--seed", "21")
        log = gateway.log_tail()
    summary = run.stdout[-6000:]
    assert run.returncode == 0, summary + run.stderr[-2000:] + log
    totals = summary.split("SUMMARY", 1)[-1]
    assert "Failures:" not in totals and re.search(r"\d+ generated, \d+ passed", totals), summary
    assert "Traceback" not in log, log
