"""verify_webhook: signatures made independently here (hmac), one or several secrets, tolerance,
tampered bodies."""

import hashlib
import hmac
import json

import pytest

from subgate_client import WebhookSignatureError, verify_webhook

SECRET = "app_webhook_secret_0123456789"
OLD = "app_webhook_secret_old_98765"
BODY = json.dumps({"id": "evt_0123", "type": "quota.exhausted", "created": 1700000000,
                   "data": {"user_id": "u1", "quota": "ai_minutes"}}, separators=(",", ":"))


def sign(body, t, *secrets):
    v1 = [hmac.new(s.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
          for s in secrets]
    return f"t={t}," + ",".join(f"v1={v}" for v in v1)


def test_verifies_and_returns_the_event():
    ev = verify_webhook(BODY.encode(), sign(BODY, 1700000000, SECRET), [SECRET], now=1700000010)
    assert ev["id"] == "evt_0123" and ev["type"] == "quota.exhausted"


def test_any_secret_of_a_rotation_verifies():
    header = sign(BODY, 1700000000, SECRET, OLD)
    assert verify_webhook(BODY, header, OLD, now=1700000000)["id"] == "evt_0123"
    assert verify_webhook(BODY, header, ["another_secret_0123456", SECRET],
                          now=1700000000)["id"] == "evt_0123"


@pytest.mark.parametrize("body,header,secrets,now", [
    (BODY + " ", sign(BODY, 1700000000, SECRET), SECRET, 1700000000),
    (BODY, sign(BODY, 1700000000, SECRET), "wrong_secret_0123456789", 1700000000),
    (BODY, sign(BODY, 1700000000, SECRET), SECRET, 1700000301),
    (BODY, "v1=" + "0" * 64, SECRET, 1700000000),
    (BODY, "", SECRET, 1700000000),
    (BODY, None, SECRET, 1700000000),
])
def test_refuses(body, header, secrets, now):
    with pytest.raises(WebhookSignatureError) as e:
        verify_webhook(body, header, secrets, now=now)
    assert e.value.code == "invalid_signature"
