"""Verification of subgate's outgoing webhooks (APP_WEBHOOK_URL): the Subgate-Signature header
is ``t=<unix>,v1=<hex>[,v1=<hex>...]``, each v1 an HMAC-SHA256 of ``"<t>.<raw body>"`` under one
of the configured secrets (several during a rotation)."""

import hashlib
import hmac
import json
import time
from typing import Any, Dict, Iterable, Optional, Union

from .errors import SubgateError


class WebhookSignatureError(SubgateError):
    """The signature does not match any secret, is malformed, or is outside the tolerance."""


def _invalid(message: str) -> WebhookSignatureError:
    return WebhookSignatureError(400, {"type": "invalid_request_error",
                                       "code": "invalid_signature", "message": message})


def verify_webhook(raw_body: Union[bytes, str], signature_header: Optional[str],
                   secrets: Union[str, Iterable[str]], tolerance_seconds: int = 300,
                   now: Optional[int] = None) -> Dict[str, Any]:
    """Returns the event ``{id, type, created, data}`` when the header verifies with any of
    ``secrets``; raises WebhookSignatureError otherwise. ``raw_body`` must be the bytes as
    received, never re-serialized JSON."""
    body = raw_body.encode("utf-8") if isinstance(raw_body, str) else bytes(raw_body)
    t = None
    sigs = []
    for part in (signature_header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            t = int(value)
        elif key == "v1" and len(value) == 64:
            sigs.append(value)
    if t is None or not sigs:
        raise _invalid("Subgate-Signature has no t= or no v1= value")
    current = int(time.time()) if now is None else now
    if abs(current - t) > tolerance_seconds:
        raise _invalid("Subgate-Signature is outside the tolerance")
    for secret in [secrets] if isinstance(secrets, str) else list(secrets):
        mac = hmac.new(secret.encode("utf-8"), str(t).encode() + b"." + body,
                       hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(mac, s) for s in sigs):
            return json.loads(body)
    raise _invalid("no Subgate-Signature v1 value matches a secret")
