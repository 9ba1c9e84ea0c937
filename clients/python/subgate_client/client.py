"""A small synchronous client of subgate's service API, on the standard library only."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

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
                 tier=body.get("tier", tier), replayed=replayed)


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
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        h = {"Accept": "application/json", **(headers or {})}
        if auth:
            h["Authorization"] = f"Bearer {self._key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, headers=h, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
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
            raise Unavailable(0, {"type": "api_error", "code": "connection_failed",
                                  "message": f"{method} {url}: {e}"}) from e
        except ValueError as e:  # a 2xx answer that is not JSON
            raise SubgateError(0, {"type": "api_error", "code": "bad_answer",
                                   "message": f"{method} {url}: {e}"}) from e
