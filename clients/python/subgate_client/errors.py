"""Exceptions mapped from subgate's error answers ({"error": {type, code, param, message}})."""

from __future__ import annotations

from typing import Any, Mapping, Optional


class SubgateError(Exception):
    """Any error answer from subgate, or no answer at all (status 0)."""

    def __init__(self, status: int, error: Mapping[str, Any],
                 request_id: Optional[str] = None) -> None:
        self.status = status
        self.error = dict(error)
        self.type: str = str(error.get("type", "api_error"))
        self.code: str = str(error.get("code", "unknown"))
        self.param: Optional[str] = error.get("param")
        self.message: str = str(error.get("message", ""))
        self.request_id = request_id
        super().__init__(f"subgate {status} {self.code}: {self.message}")


class InvalidRequest(SubgateError):
    """400: a bad argument; `param` names it (an unknown quota or feature, a bad amount)."""


class Unauthorized(SubgateError):
    """401: the service key is missing or not one of SERVICE_API_KEYS."""


class QuotaExceeded(SubgateError):
    """402: the consume was refused and nothing was recorded."""

    def __init__(self, status: int, error: Mapping[str, Any],
                 request_id: Optional[str] = None, quota: Optional[str] = None) -> None:
        super().__init__(status, error, request_id)
        self.quota = quota
        self.used: Optional[int] = error.get("used")
        self.limit: Optional[int] = error.get("limit")
        self.remaining: Optional[int] = error.get("remaining")
        self.resets_at: Optional[int] = error.get("resets_at")
        self.tier: Optional[str] = error.get("tier")


class PaymentPending(SubgateError):
    """402 payment_pending: an upgrade whose payment was declined or needs authentication. The
    tier stays; UserClient.subscription()["pending_change"]["invoice"]["hosted_invoice_url"] is
    the invoice whose payment applies it."""


class Forbidden(SubgateError):
    """403 from subgate (a user token where a service key is needed), or a refused gate."""


class NotInTier(Forbidden):
    """The user's tier lacks a feature or is below a required tier (raised by the gates)."""

    def __init__(self, user_id: str, tier: str, required_tier: Optional[str],
                 feature: Optional[str] = None, reason: str = "not_in_tier") -> None:
        if feature:
            message = f"feature '{feature}' needs tier '{required_tier}'; user is on '{tier}'"
        else:
            message = f"this needs tier '{required_tier}' or higher; user is on '{tier}'"
        super().__init__(403, {"type": "permission_error", "code": reason, "message": message})
        self.user_id = user_id
        self.tier = tier
        self.required_tier = required_tier
        self.feature = feature
        self.reason = reason


class NotFound(SubgateError):
    """404: an unknown route or resource."""


class Conflict(SubgateError):
    """409: e.g. an Idempotency-Key reused for a different request (code idempotency_key_reused),
    or a plan change while the subscription ends, is past due or awaits a payment."""


class Unavailable(SubgateError):
    """429, 502, 503, 504 or no connection: retry after `retry_after` seconds (None: unknown)."""

    def __init__(self, status: int, error: Mapping[str, Any],
                 request_id: Optional[str] = None,
                 retry_after: Optional[int] = None) -> None:
        super().__init__(status, error, request_id)
        self.retry_after = retry_after


_BY_STATUS = {400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound,
              409: Conflict}


def error_for(status: int, body: Any, request_id: Optional[str] = None,
              retry_after: Optional[int] = None, quota: Optional[str] = None) -> SubgateError:
    """The exception for an error answer of status with parsed JSON body."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"type": "api_error", "code": "bad_answer",
                 "message": f"unexpected answer with status {status}"}
    if status == 402 and error.get("code") == "payment_pending":
        return PaymentPending(status, error, request_id)
    if status == 402:
        return QuotaExceeded(status, error, request_id, quota)
    if status in (429, 502, 503, 504):
        return Unavailable(status, error, request_id, retry_after)
    return _BY_STATUS.get(status, SubgateError)(status, error, request_id)
