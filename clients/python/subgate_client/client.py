"""Small synchronous clients of subgate, on the standard library only: `Subgate` for the service
API (a service key), `UserClient` for a user's own billing (the user's JWT): subscription,
checkout and plan changes."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, TypedDict, Union

from .errors import SubgateError, Unavailable, error_for


@dataclass(frozen=True)
class Access:
    """The answer of GET /access/check."""

    allowed: bool
    user_id: str
    feature: str
    tier: str
    required_tier: Optional[str]
    reason: str


@dataclass(frozen=True)
class Quota:
    """One quota's state; `limit` and `remaining` are None when unlimited."""

    quota: str
    used: int
    limit: Optional[int]
    remaining: Optional[int]
    window: str
    window_start: int
    resets_at: int
    tier: Optional[str] = None
    replayed: bool = False  # the answer to an earlier request with the same Idempotency-Key
    extra: int = 0  # units granted on top of limit for this window (grant_units, "window")
    balance: int = 0  # granted units drawn on once limit + extra are used (grant_units, "balance")


@dataclass(frozen=True)
class Usage:
    """The answer of GET /access/usage: every quota of the user, nothing spent."""

    user_id: str
    tier: str
    quotas: Dict[str, Quota] = field(default_factory=dict)


@dataclass(frozen=True)
class Tier:
    """A tier of GET /payments/pricing; a higher `rank` includes the lower ones."""

    id: str
    name: str
    rank: int
    features: List[str]


def _quota(name: str, body: Mapping[str, Any], tier: Optional[str] = None,
           replayed: bool = False) -> Quota:
    return Quota(quota=name, used=body["used"], limit=body.get("limit"),
                 remaining=body.get("remaining"), window=body["window"],
                 window_start=body["window_start"], resets_at=body["resets_at"],
                 tier=body.get("tier", tier), replayed=replayed,
                 extra=int(body.get("extra", 0)), balance=int(body.get("balance", 0)))


class Price(TypedDict):
    """A price in minor units; interval "month" or "year"."""

    amount: int
    currency: str
    interval: str


class NextInvoice(TypedDict):
    amount_due: int
    currency: str
    date: int


class PlanPreview(TypedDict):
    """The answer of preview_plan_change: what change_plan would do, nothing changed."""

    change: str  # "upgrade", "downgrade" or "none"
    tier: str
    interval: str
    price_id: str
    price: Price
    effective_at: int  # now for an upgrade, the period end for a downgrade; 0 for none
    amount_due_now: int  # an upgrade's proration charged at once; 0 for a downgrade
    currency: str
    next_invoice: NextInvoice


class PlanChange(TypedDict, total=False):
    """`change` in the answers of change_plan, cancel_plan_change and resume_subscription."""

    type: str  # "upgrade", "downgrade", "none", "withdrawn", "resume"
    status: str  # "applied", "scheduled", "unchanged", "withdrawn", "resumed"
    effective_at: int  # a downgrade: the period end
    invoice: Optional[Dict[str, Any]]  # an upgrade: its proration invoice (amount_paid, ...)


class PendingChange(TypedDict, total=False):
    """A downgrade scheduled for the period end (type "downgrade", status "scheduled",
    effective_at, schedule_id), or an upgrade waiting for its invoice to be paid (type "upgrade",
    status "payment_pending", expires_at, invoice with hosted_invoice_url)."""

    type: str
    status: str
    tier: Optional[str]
    interval: Optional[str]
    price_id: str
    effective_at: Optional[int]
    schedule_id: str
    expires_at: Optional[int]
    invoice: Optional[Dict[str, Any]]


class Subscription(TypedDict, total=False):
    """The answer of GET /payments/subscription (and of the calls that change it, with `change`)."""

    tier: str
    status: str
    id: str
    price_id: Optional[str]
    interval: Optional[str]  # "month", "year", or None when its price is in no tier
    current_period_start: Optional[int]
    current_period_end: Optional[int]
    cancel_at_period_end: bool
    cancel_at: Optional[int]
    trial_end: Optional[int]
    access: str
    access_until: Optional[int]
    pending_change: Optional[PendingChange]
    change: PlanChange


def _plan_body(tier: str, interval: Optional[str]) -> Dict[str, Any]:
    body: Dict[str, Any] = {"tier": tier}
    if interval is not None:  # the server refuses a null interval
        body["interval"] = interval
    return body


class Subgate:
    """The service side of subgate: `Subgate("http://127.0.0.1:8080", "sk_svc_...")`.

    Every method raises a SubgateError subclass on an error answer (see errors.py).
    Thread-safe: each call is one HTTP request; the pricing catalogue is cached.
    """

    def __init__(self, base_url: str, service_key: str, timeout: float = 5.0,
                 catalogue_ttl: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = service_key
        self.timeout = timeout
        self._ttl = catalogue_ttl
        self._tiers: Optional[List[Tier]] = None
        self._tiers_at = 0.0
        self._lock = threading.Lock()

    def check(self, user_id: str, feature: str) -> Access:
        """May user_id use feature now? Unknown features raise InvalidRequest."""
        b, _ = self._call("GET", "/api/v1/access/check",
                          query={"feature": feature, "user_id": user_id})
        return Access(allowed=bool(b["allowed"]), user_id=b["user_id"], feature=b["feature"],
                      tier=b["tier"], required_tier=b.get("required_tier"),
                      reason=b["reason"])

    def consume(self, user_id: str, quota: str, amount: int = 1,
                idempotency_key: Optional[str] = None) -> Quota:
        """Spends amount of quota atomically, or raises QuotaExceeded with nothing spent."""
        return self._change("consume", user_id, quota, amount, idempotency_key)

    def track(self, user_id: str, quota: str, amount: int = 1,
              idempotency_key: Optional[str] = None) -> Quota:
        """Records usage that already happened; never refused for the limit."""
        return self._change("track", user_id, quota, amount, idempotency_key)

    def refund(self, user_id: str, quota: str, amount: int = 1,
               idempotency_key: Optional[str] = None) -> Quota:
        """Gives amount back to the current window, never below zero."""
        return self._change("refund", user_id, quota, amount, idempotency_key)

    def usage(self, user_id: str) -> Usage:
        """Every quota of user_id and its tier, spending nothing."""
        b, _ = self._call("GET", "/api/v1/access/usage", query={"user_id": user_id})
        quotas = {k: _quota(k, v, b["tier"]) for k, v in b["quotas"].items()}
        return Usage(user_id=b["user_id"], tier=b["tier"], quotas=quotas)

    def grant_units(self, user_id: str, quota: str, units: int, scope: str,
                    reason: Optional[str] = None,
                    idempotency_key: Optional[str] = None) -> Dict[str, Any]:
        """POST /access/quota-grants: units of quota on top of the limit for the user's current
        window (scope "window"), or to a balance used once a window's allowance is spent
        (scope "balance"). Returns the grant's ledger entry with `usage`, the quota after it.
        With idempotency_key a retry grants nothing more."""
        body: Dict[str, Any] = {"user_id": user_id, "quota": quota, "units": units,
                                "scope": scope}
        if reason is not None:
            body["reason"] = reason
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        b, _ = self._call("POST", "/api/v1/access/quota-grants", body=body, headers=headers)
        return b

    def ledger(self, user_id: str, quota: Optional[str] = None, limit: Optional[int] = None,
               before: Optional[int] = None) -> Dict[str, Any]:
        """GET /access/ledger: the user's usage ledger, newest first: {data, has_more,
        next_before}; pass next_before as before for the next page."""
        query = {"user_id": user_id}
        for k, v in (("quota", quota), ("limit", limit), ("before", before)):
            if v is not None:
                query[k] = str(v)
        b, _ = self._call("GET", "/api/v1/access/ledger", query=query)
        return b

    def tiers(self) -> List[Tier]:
        """The catalogue (GET /payments/pricing), cached for catalogue_ttl seconds."""
        with self._lock:
            if self._tiers is not None and time.monotonic() - self._tiers_at < self._ttl:
                return self._tiers
        b, _ = self._call("GET", "/api/v1/payments/pricing", auth=False)
        tiers = [Tier(id=t["id"], name=t["name"], rank=int(t["rank"]),
                      features=list(t["features"])) for t in b["tiers"]]
        with self._lock:
            self._tiers, self._tiers_at = tiers, time.monotonic()
        return tiers

    def tier_rank(self, tier: str) -> int:
        """The rank of tier in the catalogue; ValueError when no tier has that id."""
        for t in self.tiers():
            if t.id == tier:
                return t.rank
        raise ValueError(f"subgate has no tier '{tier}'")

    def entitlement_token(self, user_id: str) -> Dict[str, Any]:
        """POST /access/entitlement-token for user_id: {token, expires_at, kid}; check the token
        with verify_entitlement_token and jwks()."""
        b, _ = self._call("POST", "/api/v1/access/entitlement-token", body={"user_id": user_id})
        return b

    def jwks(self) -> Dict[str, Any]:
        """GET /.well-known/jwks.json: the keys entitlement tokens are signed with. Cache it;
        fetch it again when a token names a kid it does not have."""
        b, _ = self._call("GET", "/.well-known/jwks.json", auth=False)
        return b

    def for_user(self, token: Union[str, Callable[[], str]]) -> "UserClient":
        """A UserClient of the same subgate for the user whose JWT token is (or returns)."""
        return UserClient(self.base_url, token, timeout=self.timeout)

    def _change(self, verb: str, user_id: str, quota: str, amount: int,
                idempotency_key: Optional[str]) -> Quota:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        b, h = self._call("POST", f"/api/v1/access/{verb}", quota=quota, headers=headers,
                          body={"user_id": user_id, "quota": quota, "amount": amount})
        return _quota(quota, b, replayed=h.get("Idempotent-Replayed") == "true")

    def _call(self, method: str, path: str, query: Optional[Mapping[str, str]] = None,
              body: Optional[Mapping[str, Any]] = None,
              headers: Optional[Mapping[str, str]] = None, auth: bool = True,
              quota: Optional[str] = None) -> "tuple[Dict[str, Any], Mapping[str, str]]":
        return _request(self.base_url, self.timeout, method, path, query, body, headers,
                        self._key if auth else None, quota)


class UserClient:
    """A user's own billing, with the user's JWT: `UserClient("http://127.0.0.1:8080", jwt)`
    (or `Subgate(...).for_user(jwt)`); token may be a function returning it, called before each
    request. The answers are subgate's JSON as dicts; errors raise SubgateError subclasses:
    InvalidRequest (400, `param`), Unauthorized (401), PaymentPending (402 of an upgrade whose
    payment is declined or needs authentication), NotFound (404: no subscription), Conflict
    (409: ending, past due or awaiting payment)."""

    def __init__(self, base_url: str, token: Union[str, Callable[[], str]],
                 timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def subscription(self) -> Subscription:
        """GET /subscription: the subscription, the tier it grants now, pending_change."""
        return self._call("GET", "/subscription")  # type: ignore[return-value]

    def checkout(self, tier: str, success_url: str, cancel_url: str,
                 trial_days: Optional[int] = None,
                 interval: Optional[str] = None) -> Dict[str, Any]:
        """POST /create-checkout-session: {session_id, url}; interval "month" or "year" picks
        one of the tier's prices (default: its primary price)."""
        body: Dict[str, Any] = {"tier": tier, "success_url": success_url,
                                "cancel_url": cancel_url}
        if trial_days is not None:
            body["trial_days"] = trial_days
        if interval is not None:
            body["interval"] = interval
        return self._call("POST", "/create-checkout-session", body=body)

    def checkout_success(self, session_id: str) -> Subscription:
        """POST /checkout-success: applies the paid session at once; answers like subscription()."""
        return self._call("POST", "/checkout-success",  # type: ignore[return-value]
                          body={"session_id": session_id})

    def cancel(self, immediate: bool = False) -> Subscription:
        """POST /cancel-subscription: at period end (default) or now."""
        return self._call("POST", "/cancel-subscription",  # type: ignore[return-value]
                          query={"immediate": "true" if immediate else "false"})

    def change_plan(self, tier: str, interval: Optional[str] = None) -> Subscription:
        """POST /change-plan: an upgrade applies now and its proration is charged at once
        (PaymentPending when that payment is declined or needs authentication); a downgrade is
        scheduled for the period end. The subscription, with `change`."""
        return self._call("POST", "/change-plan",  # type: ignore[return-value]
                          body=_plan_body(tier, interval))

    def preview_plan_change(self, tier: str, interval: Optional[str] = None) -> PlanPreview:
        """POST /preview-plan-change: what change_plan would do (amount_due_now, effective_at,
        next_invoice), changing nothing."""
        return self._call("POST", "/preview-plan-change",  # type: ignore[return-value]
                          body=_plan_body(tier, interval))

    def cancel_plan_change(self) -> Subscription:
        """POST /cancel-plan-change: withdraws a downgrade scheduled for the period end
        (change.status "withdrawn", or "unchanged" when none was scheduled)."""
        return self._call("POST", "/cancel-plan-change")  # type: ignore[return-value]

    def resume_subscription(self) -> Subscription:
        """POST /resume-subscription: withdraws a cancellation at period end
        (change.status "resumed", or "unchanged")."""
        return self._call("POST", "/resume-subscription")  # type: ignore[return-value]

    def entitlement_token(self) -> Dict[str, Any]:
        """POST /api/v1/access/entitlement-token: {token, expires_at, kid}, the user's own."""
        return self._call("POST", "/entitlement-token", prefix="/api/v1/access")

    def _call(self, method: str, path: str, query: Optional[Mapping[str, str]] = None,
              body: Optional[Mapping[str, Any]] = None,
              prefix: str = "/api/v1/payments") -> Dict[str, Any]:
        token = self.token() if callable(self.token) else self.token
        b, _ = _request(self.base_url, self.timeout, method, prefix + path, query, body, None,
                        token or None, None)
        return b


def _request(base_url: str, timeout: float, method: str, path: str,
             query: Optional[Mapping[str, str]], body: Optional[Mapping[str, Any]],
             headers: Optional[Mapping[str, str]], bearer: Optional[str],
             quota: Optional[str]) -> "tuple[Dict[str, Any], Mapping[str, str]]":
    url = base_url + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    h = {"Accept": "application/json", **(headers or {})}
    if bearer:
        h["Authorization"] = f"Bearer {bearer}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read()), r.headers
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        retry = e.headers.get("Retry-After", "")
        raise error_for(e.code, parsed, e.headers.get("Request-Id"),
                        int(retry) if retry.isdigit() else None, quota) from None
    except (urllib.error.URLError, OSError) as e:
        raise Unavailable(0, {"type": "connection_error", "code": "connection_failed",
                              "message": f"{method} {url}: {e}"}) from e
    except ValueError as e:  # a 2xx answer that is not JSON
        raise SubgateError(0, {"type": "api_error", "code": "bad_answer",
                               "message": f"{method} {url}: {e}"}) from e
