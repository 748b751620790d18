"""A real gateway on loopback for the clients a portal team would use: gunicorn, its own
SQLite file and a policy whose request quotas are raised (so a fuzzer or a client script
meets the rate limiter only where it means to), every provider pointed at a closed port
on loopback, and an owner account with a bearer token.

Used by tests/test_openapi_fuzz.py and bench/openapi_fuzz.py.
"""
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import requests
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway_app.migrate import upgrade
from tests.support.servers import ROOT as ROOT_DIR, Gunicorn

PASSWORD = "correct horse battery staple"
ROOT = Path(ROOT_DIR)
QUOTA = re.compile(r"^(\d+)\s*(/|per\b)")
# nothing listens there: a provider call fails at once, on this machine
CLOSED_PORT = "http://127.0.0.1:9"


def generous_login_throttle(policy):
    """A fuzzer's failed logins all come from one address: with the address's bound (20 per
    15 minutes) they would soon lock out the run's own token fetches."""
    policy["authentication"]["failed_login_limit"] = "100000/15 minutes"


def raised_quotas(policy, factor):
    """``policy`` with every rate-limit quota (``N/unit``) multiplied by ``factor``."""
    def raise_one(value):
        if isinstance(value, str) and QUOTA.match(value):
            return QUOTA.sub(lambda m: f"{int(m.group(1)) * factor}{m.group(2)}", value, count=1)
        if isinstance(value, list):
            return [raise_one(item) for item in value]
        if isinstance(value, dict):
            return {key: raise_one(item) for key, item in value.items()}
        return value
    policy = dict(policy)
    policy["rate_limiting"] = raise_one(policy["rate_limiting"])
    return policy


class LiveGateway:
    """``with LiveGateway() as gateway:`` a served gateway with ``gateway.url``,
    ``gateway.admin_token`` and an owner (``gateway.owner_token``, ``gateway.owner_email``)."""

    def __init__(self, quota_factor=1000, redis_url=None, workers=1, policy_changes=None):
        self.dir = Path(tempfile.mkdtemp(prefix="gw-live-"))
        self.admin_token = "admin-" + uuid.uuid4().hex + uuid.uuid4().hex
        policy = yaml.safe_load((ROOT / "conf" / "gateway.yaml").read_text())
        if quota_factor != 1:
            policy = raised_quotas(policy, quota_factor)
        for change in policy_changes or ():
            change(policy)
        (self.dir / "gateway.yaml").write_text(yaml.safe_dump(policy))
        database = f"sqlite:///{self.dir}/gateway.db"
        upgrade(database)
        sendgrid_key = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        env = {"DATABASE_URL": database, "GATEWAY_CONFIG": str(self.dir / "gateway.yaml"),
               "SECRET_KEY": "live-" + uuid.uuid4().hex + uuid.uuid4().hex,
               "GATEWAY_ADMIN_TOKEN": self.admin_token, "FILE_STORAGE_DIR": str(self.dir / "files"),
               "CALCOM_WEBHOOK_SECRET": "whsec-calcom-" + uuid.uuid4().hex,
               "STRIPE_WEBHOOK_SECRET": "whsec_" + uuid.uuid4().hex,
               "RETELL_API_KEY": "key_" + uuid.uuid4().hex,
               "SENDGRID_WEBHOOK_PUBLIC_KEY": base64.b64encode(sendgrid_key).decode()}
        for provider in ("CALCOM", "RETELL", "STRIPE", "SENDGRID"):
            env[f"{provider}_BASE_URL"] = CLOSED_PORT
        if redis_url:
            env["REDIS_URL"] = redis_url
        self.server = Gunicorn(env, workers=workers)
        self.owner_email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
        self.owner_token = None

    @property
    def url(self):
        return self.server.url

    def __enter__(self):
        self.server.start()
        signed_up = requests.post(self.url + "/api/v1/auth/signup", timeout=10, json={
            "company_name": "Portal Test", "name": "Owner", "email": self.owner_email, "password": PASSWORD})
        signed_up.raise_for_status()
        self.company_id = signed_up.json()["company"]["id"]
        token = requests.post(self.url + "/api/v1/auth/token", timeout=10,
                              json={"email": self.owner_email, "password": PASSWORD})
        token.raise_for_status()
        self.owner_token = token.json()["access_token"]
        return self

    def new_owner(self):
        """Another company's owner: (e-mail, password)."""
        email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
        requests.post(self.url + "/api/v1/auth/signup", timeout=10, json={
            "company_name": "Portal " + email, "name": "Owner", "email": email,
            "password": PASSWORD}).raise_for_status()
        return email, PASSWORD

    def __exit__(self, *exc):
        self.server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, size=4000):
        self.server.log.flush()
        return Path(self.server.log.name).read_text(errors="replace")[-size:]


def schemathesis_command(gateway, max_examples, *extra):
    """The schemathesis CLI over the whole document, every check, as the owner."""
    return [str(Path(sys.executable).with_name("schemathesis")),
            "--config-file", str(ROOT / "tests" / "schemathesis.toml"), "run", gateway.url + "/openapi.json",
            "--url", gateway.url, "--checks", "all", "--max-examples", str(max_examples),
            "--no-color", *extra]


def run_schemathesis(gateway, max_examples, *extra, timeout=900):
    """Its credentials come from tests/schemathesis.toml, which reads them from here."""
    env = dict(os.environ, FUZZ_EMAIL=gateway.owner_email, FUZZ_PASSWORD=PASSWORD,
               FUZZ_ADMIN_TOKEN=gateway.admin_token)
    # in its own directory: schemathesis keeps a cache (.schemathesis) where it runs
    return subprocess.run(schemathesis_command(gateway, max_examples, *extra), cwd=gateway.dir, env=env,
                          capture_output=True, text=True, timeout=timeout)
