"""FastAPI gates and metering on a Subgate client.

    gate = Gate(Subgate(URL, KEY), user_id=current_user_id)  # your auth: a dependency -> str
    gate.install(app)                                         # SubgateError -> HTTP answers

    @app.post("/api/ai/chat")
    def chat(caller: Caller = Depends(gate.require_tier("premium")),
             meter: Meter = Depends(gate.meter)):
        with meter.consume("ai_minutes", 2):  # spent up front, refunded if the block raises
            ...
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Callable, Dict, Optional, Type

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from .client import Quota, Subgate
from .errors import NotInTier, QuotaExceeded, SubgateError, Unavailable


@dataclass(frozen=True)
class Caller:
    """What a gate dependency returns: the user it let through and that user's tier."""

    user_id: str
    tier: str


class Reservation:
    """Units consumed up front; a context manager that refunds them all if its block raises.

    `refund(n)` gives back part of them (work that used less than reserved).
    """

    def __init__(self, client: Subgate, user_id: str, quota: Quota, amount: int,
                 key: str) -> None:
        self._client = client
        self._user_id = user_id
        self._key = key
        self._refunds = 0
        self.quota = quota
        self.amount = amount
        self.refunded = 0

    def refund(self, amount: Optional[int] = None) -> Quota:
        """Gives back amount (default: all not yet refunded), idempotently per call."""
        n = self.amount - self.refunded if amount is None else amount
        if n <= 0 or n > self.amount - self.refunded:
            raise ValueError(f"cannot refund {n} of {self.amount - self.refunded} left")
        self._refunds += 1
        q = self._client.refund(self._user_id, self.quota.quota, n,
                                idempotency_key=f"{self._key}:refund:{self._refunds}")
        self.refunded += n
        return q

    def __enter__(self) -> "Reservation":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> bool:
        if exc_type is not None and self.refunded < self.amount:
            self.refund()
        return False


class Meter:
    """Per-request metering for one user: `consume(quota, n, idempotency_key=None)`.

    Without a key, each consume of the request gets its own (a fresh id per request, then a
    sequence number), so subgate's own retries never double-spend; pass the key of the app's
    incoming request (e.g. its Idempotency-Key header) to make a client's retry consume once.
    """

    def __init__(self, client: Subgate, user_id: str) -> None:
        self._client = client
        self._base = uuid.uuid4().hex
        self._seq = 0
        self.user_id = user_id

    def consume(self, quota: str, amount: int = 1,
                idempotency_key: Optional[str] = None) -> Reservation:
        """Spends amount now (QuotaExceeded when refused); the Reservation refunds it."""
        self._seq += 1
        key = idempotency_key or f"{self._base}:{quota}:{self._seq}"
        q = self._client.consume(self.user_id, quota, amount, idempotency_key=key)
        return Reservation(self._client, self.user_id, q, amount, key)

    def refund(self, quota: str, amount: int = 1,
               idempotency_key: Optional[str] = None) -> Quota:
        """Gives back amount of quota (never below zero)."""
        return self._client.refund(self.user_id, quota, amount, idempotency_key)


class Gate:
    """Dependencies on one client. user_id is a FastAPI dependency returning the caller's id
    (your own authentication: a session, your JWT check); it may itself use Depends."""

    def __init__(self, client: Subgate, user_id: Callable[..., str]) -> None:
        self.client = client
        self._user_id = user_id

        def meter(uid: str = Depends(user_id)) -> Meter:
            return Meter(client, uid)

        self.meter = meter

    def require_tier(self, tier: str) -> Callable[..., Caller]:
        """A dependency that lets through users on tier or a higher one (by the catalogue's
        rank); else NotInTier (403 with install)."""
        client = self.client

        def dependency(uid: str = Depends(self._user_id)) -> Caller:
            need = client.tier_rank(tier)
            has = client.usage(uid).tier
            if client.tier_rank(has) < need:
                raise NotInTier(uid, has, tier)
            return Caller(uid, has)

        return dependency

    def require_feature(self, feature: str) -> Callable[..., Caller]:
        """A dependency that lets through users whose tier has feature; else NotInTier."""
        client = self.client

        def dependency(uid: str = Depends(self._user_id)) -> Caller:
            a = client.check(uid, feature)
            if not a.allowed:
                raise NotInTier(uid, a.tier, a.required_tier, feature, a.reason)
            return Caller(uid, a.tier)

        return dependency

    def install(self, app: FastAPI) -> None:
        """Answers SubgateError in the app: NotInTier 403, QuotaExceeded 402, Unavailable 503
        with Retry-After; any other (a bad key, an unknown quota) 502, as the app's upstream."""
        app.add_exception_handler(SubgateError, error_response)


def error_response(request: Request, exc: Any) -> JSONResponse:
    """The app's answer for a SubgateError: subgate's error shape, with what the user needs."""
    assert isinstance(exc, SubgateError)
    error: Dict[str, Any] = {"type": exc.type, "code": exc.code, "message": exc.message}
    headers: Dict[str, str] = {}
    if isinstance(exc, NotInTier):
        status = 403
        error.update(tier=exc.tier, required_tier=exc.required_tier, feature=exc.feature)
    elif isinstance(exc, QuotaExceeded):
        status = 402
        error.update(quota=exc.quota, used=exc.used, limit=exc.limit,
                     remaining=exc.remaining, resets_at=exc.resets_at, tier=exc.tier)
    elif isinstance(exc, Unavailable):
        status = 503
        headers["Retry-After"] = str(exc.retry_after or 1)
    else:
        status = 502
        error = {"type": "api_error", "code": "subgate_error",
                 "message": f"access service: {exc.code}"}
    return JSONResponse({"error": error}, status_code=status, headers=headers)
