"""The providers' signature schemes reproduce the test vectors of docs/integrations.md
exactly, and reject tampered bodies, wrong secrets and timestamps outside the tolerance
either way."""
import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from gateway_app.webhooks import signatures
from gateway_app.webhooks.signatures import SignatureError
from tests.conftest import sendgrid_public_key_b64

BODY = b'{"event":"call_ended","call":{"call_id":"call_abc"}}'
RETELL_VECTOR = "fb932992541381ebdd2551b4dd55d6a99810ff8b08a416839f645d1fffbfec77"
STRIPE_VECTOR = "37355922de351709d176c5157e85fc7d22bb5eb41f23f1a8bab5e702e89f707c"
CALCOM_VECTOR = "2ecb3f9668614a9b7e1681d02071717f2466f40e82e640aca443609c3f4ca0da"
NOW = 1700000000.0


def test_retell_vector():
    assert signatures.retell_digest("key_test", BODY, 1700000000000) == RETELL_VECTOR
    signatures.verify_retell("key_test", BODY, f"v=1700000000000,d={RETELL_VECTOR}", NOW, 300)


def test_stripe_vector():
    assert signatures.stripe_digest("whsec_test", BODY, 1700000000) == STRIPE_VECTOR
    signatures.verify_stripe("whsec_test", BODY, f"t=1700000000,v1={STRIPE_VECTOR}", NOW, 300)


def test_calcom_vector():
    assert signatures.calcom_digest("calsecret", BODY) == CALCOM_VECTOR
    signatures.verify_calcom("calsecret", BODY, CALCOM_VECTOR)
    signatures.verify_calcom("calsecret", BODY, CALCOM_VECTOR.upper())  # hex case is not meaning


@pytest.mark.parametrize("check", [
    lambda: signatures.verify_retell("key_test", BODY + b" ", f"v=1700000000000,d={RETELL_VECTOR}", NOW, 300),
    lambda: signatures.verify_retell("key_other", BODY, f"v=1700000000000,d={RETELL_VECTOR}", NOW, 300),
    lambda: signatures.verify_retell("key_test", BODY, f"v=1700000000001,d={RETELL_VECTOR}", NOW, 300),
    lambda: signatures.verify_retell("key_test", BODY, f"d={RETELL_VECTOR}", NOW, 300),
    lambda: signatures.verify_retell("key_test", BODY, None, NOW, 300),
    lambda: signatures.verify_stripe("whsec_test", BODY + b" ", f"t=1700000000,v1={STRIPE_VECTOR}", NOW, 300),
    lambda: signatures.verify_stripe("whsec_other", BODY, f"t=1700000000,v1={STRIPE_VECTOR}", NOW, 300),
    lambda: signatures.verify_stripe("whsec_test", BODY, f"t=1700000001,v1={STRIPE_VECTOR}", NOW, 300),
    lambda: signatures.verify_stripe("whsec_test", BODY, f"t=1700000000,v0={STRIPE_VECTOR}", NOW, 300),
    lambda: signatures.verify_stripe("whsec_test", BODY, "", NOW, 300),
    lambda: signatures.verify_calcom("calsecret", BODY + b" ", CALCOM_VECTOR),
    lambda: signatures.verify_calcom("othersecret", BODY, CALCOM_VECTOR),
    lambda: signatures.verify_calcom("calsecret", BODY, None),
], ids=["retell-body", "retell-key", "retell-v", "retell-no-v", "retell-missing",
        "stripe-body", "stripe-secret", "stripe-t", "stripe-v0-only", "stripe-missing",
        "calcom-body", "calcom-secret", "calcom-missing"])
def test_tampering_is_rejected(check):
    with pytest.raises(SignatureError):
        check()


def test_stripe_accepts_any_of_several_v1_signatures():
    header = f"t=1700000000,v1={'0' * 64},v1={STRIPE_VECTOR},v0=ignored"
    signatures.verify_stripe("whsec_test", BODY, header, NOW, 300)


@pytest.mark.parametrize("skew", [-301, 301])
def test_timestamps_outside_the_tolerance_either_way_are_rejected(skew):
    with pytest.raises(SignatureError, match="300 s"):
        signatures.verify_retell("key_test", BODY, f"v=1700000000000,d={RETELL_VECTOR}", NOW + skew, 300)
    with pytest.raises(SignatureError, match="300 s"):
        signatures.verify_stripe("whsec_test", BODY, f"t=1700000000,v1={STRIPE_VECTOR}", NOW + skew, 300)


@pytest.mark.parametrize("skew", [-300, 300])
def test_timestamps_at_the_tolerance_edge_are_accepted(skew):
    signatures.verify_retell("key_test", BODY, f"v=1700000000000,d={RETELL_VECTOR}", NOW + skew, 300)
    signatures.verify_stripe("whsec_test", BODY, f"t=1700000000,v1={STRIPE_VECTOR}", NOW + skew, 300)


def sendgrid_sign(private_key, timestamp, body):
    return base64.b64encode(private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


def test_sendgrid_ecdsa_round_trip_and_rejections():
    private_key = ec.generate_private_key(ec.SECP256R1())
    public_key = signatures.load_sendgrid_public_key(sendgrid_public_key_b64(private_key))
    body = b'[{"email":"a@example.com","event":"delivered","sg_event_id":"e1"}]'
    signature = sendgrid_sign(private_key, "1700000000", body)
    signatures.verify_sendgrid(public_key, body, signature, "1700000000", NOW, 600)
    with pytest.raises(SignatureError, match="does not match"):
        signatures.verify_sendgrid(public_key, body + b" ", signature, "1700000000", NOW, 600)
    with pytest.raises(SignatureError, match="does not match"):  # the timestamp is signed too
        signatures.verify_sendgrid(public_key, body, signature, "1700000001", NOW, 600)
    other = sendgrid_sign(ec.generate_private_key(ec.SECP256R1()), "1700000000", body)
    with pytest.raises(SignatureError, match="does not match"):
        signatures.verify_sendgrid(public_key, body, other, "1700000000", NOW, 600)
    with pytest.raises(SignatureError, match="not base64"):
        signatures.verify_sendgrid(public_key, body, "***", "1700000000", NOW, 600)
    with pytest.raises(SignatureError, match="does not match"):
        signatures.verify_sendgrid(public_key, body, base64.b64encode(b"not der").decode(),
                                   "1700000000", NOW, 600)
    with pytest.raises(SignatureError, match="600 s"):
        signatures.verify_sendgrid(public_key, body, signature, "1700000000", NOW + 601, 600)
    with pytest.raises(SignatureError, match="required"):
        signatures.verify_sendgrid(public_key, body, None, "1700000000", NOW, 600)


def test_sendgrid_key_must_be_an_ec_public_key():
    with pytest.raises(ValueError):
        signatures.load_sendgrid_public_key("not base64 at all!")
    with pytest.raises(ValueError):
        signatures.load_sendgrid_public_key(base64.b64encode(b"garbage").decode())
