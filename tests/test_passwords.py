"""argon2 parameters: production keeps the RFC 9106 low-memory profile; the tests' apps
name the cheapest profile (tests/conftest.py), and a hash verifies whichever made it."""
import argon2
from argon2 import profiles

from gateway_app import create_app
from gateway_app.identity.passwords import PRODUCTION_PARAMETERS, hash_password, verify_password
from tests.conftest import build_app


def test_production_hashes_with_the_rfc_9106_low_memory_profile(tmp_path):
    assert PRODUCTION_PARAMETERS == profiles.RFC_9106_LOW_MEMORY
    assert PRODUCTION_PARAMETERS == argon2.PasswordHasher()._parameters   # argon2-cffi's default
    # outside any app, and in an app that names no parameters (the production configuration)
    assert argon2.extract_parameters(hash_password("secret")) == profiles.RFC_9106_LOW_MEMORY
    app = create_app({"SQLALCHEMY_DATABASE_URL": f"sqlite:///{tmp_path}/p.db", "REDIS_URL": None,
                      "SECRET_KEY": "x" * 32})
    assert "PASSWORD_HASH_PARAMETERS" not in app.config
    with app.app_context():
        made = hash_password("secret")
        assert argon2.extract_parameters(made) == profiles.RFC_9106_LOW_MEMORY
        assert verify_password(made, "secret") and not verify_password(made, "wrong")
        assert not verify_password(None, "secret")
    app.extensions["gateway_engine"].dispose()


def test_the_test_apps_hash_cheaply_and_verify_every_profile(tmp_path):
    production_hash = hash_password("secret")
    app = build_app(f"sqlite:///{tmp_path}/t.db")
    with app.app_context():
        made = hash_password("secret")
        assert argon2.extract_parameters(made) == profiles.CHEAPEST
        assert verify_password(made, "secret") and not verify_password(made, "wrong")
        assert verify_password(production_hash, "secret")
        assert not verify_password(production_hash, "wrong")
        assert not verify_password(None, "secret") and not verify_password("not a hash", "secret")
    app.extensions["gateway_engine"].dispose()
