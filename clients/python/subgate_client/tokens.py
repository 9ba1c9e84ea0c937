"""Local verification of subgate's entitlement tokens: short-lived JWTs signed by subgate (ES256
or EdDSA) stating a user's tier, features and quotas, checked against the keys subgate publishes
at /.well-known/jwks.json with no call to subgate.

The standard library has no ECDSA or Ed25519, so this needs the `cryptography` package (PyCA's,
packaged in Debian as python3-cryptography; `pip install subgate-client[tokens]`). It is
imported when a token is first verified, so the rest of the client works without it."""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any, Dict, Mapping, Optional


class EntitlementTokenError(Exception):
    """A token refused; code is one of malformed, alg, unknown_kid, signature, expired, issuer,
    audience."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


_ALGS = {"ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519")}


def _b64url(s: str) -> bytes:
    try:
        if not s.isascii() or "=" in s:
            raise ValueError("padding")
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    except (ValueError, binascii.Error):
        raise EntitlementTokenError("malformed", "entitlement token: not base64url") from None


def _b64url_json(s: str) -> Dict[str, Any]:
    try:
        v = json.loads(_b64url(s))
    except ValueError:
        raise EntitlementTokenError("malformed", "entitlement token: a part is not JSON") from None
    if not isinstance(v, dict):
        raise EntitlementTokenError("malformed", "entitlement token: a part is not an object")
    return v


def _public_key(jwk: Mapping[str, Any]) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    x = _b64url(str(jwk.get("x", "")))
    if jwk.get("kty") == "OKP":
        return ed25519.Ed25519PublicKey.from_public_bytes(x)
    y = _b64url(str(jwk.get("y", "")))
    if len(x) != 32 or len(y) != 32:
        raise EntitlementTokenError("malformed", "JWKS: a P-256 coordinate is not 32 bytes")
    return ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                         ec.SECP256R1()).public_key()


def _signature_ok(alg: str, key: Any, sig: bytes, data: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    try:
        if alg == "ES256":
            if len(sig) != 64:
                return False
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                       int.from_bytes(sig[32:], "big"))
            key.verify(der, data, ec.ECDSA(hashes.SHA256()))
        else:
            key.verify(sig, data)
    except InvalidSignature:
        return False
    return True


def _check_claims(c: Mapping[str, Any], issuer: Optional[str], audience: Optional[str],
                  now: Optional[float], leeway: int) -> None:
    t = time.time() if now is None else now
    exp = c.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise EntitlementTokenError("malformed", "entitlement token: no exp")
    if t > exp + leeway:
        raise EntitlementTokenError("expired", f"entitlement token expired at {exp}")
    if issuer is not None and c.get("iss") != issuer:
        raise EntitlementTokenError("issuer", f"entitlement token: wrong issuer {c.get('iss')!r}")
    aud = c.get("aud")
    auds = aud if isinstance(aud, list) else [] if aud is None else [aud]
    if audience is not None and audience not in auds:
        raise EntitlementTokenError("audience", "entitlement token: wrong audience")


def verify_entitlement_token(token: str, jwks: Mapping[str, Any], issuer: Optional[str] = None,
                             audience: Optional[str] = None, now: Optional[float] = None,
                             leeway: int = 60) -> Dict[str, Any]:
    """Verifies token against jwks (subgate's /.well-known/jwks.json, as a dict) and returns its
    claims: iss, sub, iat, exp, tier, features, quotas ({id: {limit, used, remaining, window,
    window_start, resets_at}}, limit and remaining None when unlimited) and aud when set.
    issuer and audience are checked when given; now (Unix seconds) defaults to the clock, and
    leeway is the clock skew accepted after exp. Raises EntitlementTokenError."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise EntitlementTokenError("malformed", "entitlement token: not a JWS compact token")
    header = _b64url_json(parts[0])
    alg = header.get("alg")
    if alg not in _ALGS:
        raise EntitlementTokenError("alg", f"entitlement token: alg {alg!r} is not ES256 or EdDSA")
    kid = header.get("kid")
    jwk = next((k for k in jwks.get("keys", []) if k.get("kid") == kid), None)
    if jwk is None:
        raise EntitlementTokenError("unknown_kid", f"entitlement token: unknown kid {kid!r}")
    if (jwk.get("kty"), jwk.get("crv")) != _ALGS[alg]:
        raise EntitlementTokenError("alg", f"entitlement token: alg {alg} does not match the key")
    data = f"{parts[0]}.{parts[1]}".encode()
    if not _signature_ok(alg, _public_key(jwk), _b64url(parts[2]), data):
        raise EntitlementTokenError("signature", "entitlement token: bad signature")
    claims = _b64url_json(parts[1])
    _check_claims(claims, issuer, audience, now, leeway)
    return claims
