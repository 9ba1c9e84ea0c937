"""Fixtures: the real subgate binary on a free loopback port with a fresh SQLite database, and
paid users made by signed Stripe webhooks (HMAC-SHA256 over "<t>.<body>", as Stripe signs);
for plan changes, a second subgate in front of the Stripe emulator (EMULATOR_BIN, default the
stripe-emulator beside SUBGATE_BIN) with users subscribed on test clocks, and user JWTs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from subgate_client import Subgate, UserClient  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("SUBGATE_BIN", REPO / "build/release/subgate")).resolve()
SERVICE_KEY = "sk_svc_pyclient_0123456789"
JWT_SECRET = "pyclient-secret-0123456789-abcdefghij"
WHSEC = "whsec_pyclient_0123456789abcdef"
PRICES = {"premium": "price_py_premium", "plus": "price_py_plus"}
EMULATOR_BIN = Path(os.environ.get("EMULATOR_BIN", BIN.parent / "stripe-emulator")).resolve()
EMULATOR_KEY = "sk_test_emulator"
EMU_WHSEC = "whsec_pyclient_emulator_0123456789"
ORIGIN = "http://localhost:3000"
SUCCESS = f"{ORIGIN}/billing/success?session_id={{CHECKOUT_SESSION_ID}}"
CANCEL = f"{ORIGIN}/billing/cancel"
T0 = 1767225600  # 2026-01-01T00:00:00Z: January has 31 days
DAY = 86400


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    base: str
    proc: subprocess.Popen  # type: ignore[type-arg]
    log: Path

    def client(self) -> Subgate:
        return Subgate(self.base, SERVICE_KEY)

    def subscribe(self, user_id: str, tier: str) -> None:
        """Makes user_id a subscriber of tier through a signed customer.subscription.created."""
        t = int(time.time())
        sub = {
            "id": f"sub_{user_id}", "object": "subscription", "customer": f"cus_{user_id}",
            "status": "active", "current_period_start": t - 60,
            "current_period_end": t + 30 * 86400, "cancel_at_period_end": False,
            "canceled_at": None, "cancel_at": None, "trial_end": None,
            "metadata": {"user_id": user_id},
            "items": {"object": "list",
                      "data": [{"id": f"si_{user_id}", "price": {"id": PRICES[tier]}}]},
        }
        body = json.dumps({"id": f"evt_{user_id}", "object": "event",
                           "type": "customer.subscription.created", "created": t,
                           "livemode": False, "data": {"object": sub}}).encode()
        v1 = hmac.new(WHSEC.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        req = urllib.request.Request(
            self.base + "/api/v1/payments/webhook", data=body, method="POST",
            headers={"Content-Type": "application/json", "Stripe-Signature": f"t={t},v1={v1}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200


def new_p256_key_pem() -> bytes:
    """A new EC P-256 private key, PKCS#8 PEM: the key subgate signs entitlement tokens with."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    assert BIN.is_file(), f"{BIN} is missing: run make first"
    with tempfile.TemporaryDirectory(prefix="subgate-py-") as tmp:
        port = free_port()
        key = Path(tmp) / "entitlement.key.pem"
        key.write_bytes(new_p256_key_pem())
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ENTITLEMENT_TOKEN_KEY_FILE": str(key),
            "JWT_SECRET": JWT_SECRET,
            "SERVICE_API_KEYS": SERVICE_KEY,
            "LISTEN": f"127.0.0.1:{port}",
            "HTTP_THREADS": "2",
            "DATABASE_URL": f"sqlite:{tmp}/subgate.db",
            "STRIPE_WEBHOOK_SECRET": WHSEC,
            "STRIPE_PREMIUM_PRICE_ID": PRICES["premium"],
            "STRIPE_PLUS_PRICE_ID": PRICES["plus"],
        }
        log = Path(tmp) / "subgate.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(BIN), "serve"], cwd=tmp, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
        srv = Server(f"http://127.0.0.1:{port}", proc, log)
        try:
            for _ in range(300):
                assert proc.poll() is None, f"subgate exited early: {log.read_text()}"
                try:
                    with urllib.request.urlopen(srv.base + "/healthz", timeout=1) as r:
                        if r.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    time.sleep(0.05)
            else:
                pytest.fail(f"subgate did not start: {log.read_text()}")
            yield srv
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
        assert rc == 0, f"subgate exited with {rc}: {log.read_text()[-2000:]}"


_users = iter(range(1, 1_000_000))


@pytest.fixture
def user() -> str:
    """A user id no other test uses (fresh quotas)."""
    return f"py_user_{os.getpid()}_{next(_users)}"


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def user_token(user_id: str) -> str:
    """A user JWT (HS256 with the server's JWT_SECRET) for user_id, valid an hour."""
    t = int(time.time())
    head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64url(json.dumps({"sub": user_id, "email": f"{user_id}@example.com", "iat": t,
                               "exp": t + 3600}).encode())
    sig = hmac.new(JWT_SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64url(sig)}"


def _stripe_form(params: Mapping[str, Any], prefix: str = "") -> "list[Tuple[str, str]]":
    """Stripe's form encoding: nested objects and lists as a[b][0]=c."""
    out: "list[Tuple[str, str]]" = []
    items = params.items() if isinstance(params, Mapping) else enumerate(params)
    for k, v in items:
        key = f"{prefix}[{k}]" if prefix else str(k)
        if isinstance(v, (Mapping, list)):
            out += _stripe_form(v, key)  # type: ignore[arg-type]
        else:
            out.append((key, str(v)))
    return out


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        return None


@dataclass
class Billing:
    """subgate (base) in front of the Stripe emulator (emu)."""

    base: str
    emu: str

    def user(self, user_id: str) -> UserClient:
        return UserClient(self.base, lambda: user_token(user_id))

    def stripe(self, method: str, path: str, params: Optional[Mapping[str, Any]] = None
               ) -> Dict[str, Any]:
        """Calls the emulator's Stripe API; asserts 200."""
        q = urllib.parse.urlencode(_stripe_form(params or {}))
        url, data = self.emu + path, None
        if method == "GET":
            url += "?" + q if q else ""
        else:
            data = q.encode()
        req = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {EMULATOR_KEY}",
            "Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=20) as r:
            return json.loads(r.read())

    def control(self, path: str, body: Mapping[str, Any]) -> Dict[str, Any]:
        req = urllib.request.Request(self.emu + path, data=json.dumps(body).encode(),
                                     method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def drain(self) -> None:
        """Waits until the emulator delivered every webhook to subgate."""
        self.control("/_emulator/webhooks/drain", {"timeout_ms": 20000})

    def advance(self, clock: Dict[str, Any], to: int) -> None:
        self.stripe("POST", f"/v1/test_helpers/test_clocks/{clock['id']}/advance",
                    {"frozen_time": to})
        self.drain()

    def pay(self, url: str) -> str:
        """Pays a checkout session on the emulator's hosted page; the session id it returns."""
        opener = urllib.request.build_opener(_NoRedirect)
        data = urllib.parse.urlencode({"card": "4242424242424242"}).encode()
        try:
            opener.open(urllib.request.Request(url + "/pay", data=data, method="POST"),
                        timeout=20)
        except urllib.error.HTTPError as e:
            assert e.code == 303, e.read()
            back = urllib.parse.urlparse(e.headers["Location"])
            return urllib.parse.parse_qs(back.query)["session_id"][0]
        raise AssertionError("the hosted page did not redirect")

    def subscriber(self, user_id: str, price: str = "price_premium_monthly"
                   ) -> Tuple[UserClient, Dict[str, Any], Dict[str, Any], Dict[str, Any]]:
        """user_id subscribed to price on a test clock frozen at T0 (the customer made on the
        clock, the session paid, applied by checkout_success): (client, clock, Stripe customer,
        subscription as subgate answers it)."""
        clock = self.stripe("POST", "/v1/test_helpers/test_clocks", {"frozen_time": T0})
        cus = self.stripe("POST", "/v1/customers", {
            "email": f"{user_id}@example.com", "metadata": {"user_id": user_id},
            "test_clock": clock["id"]})
        session = self.stripe("POST", "/v1/checkout/sessions", {
            "mode": "subscription", "customer": cus["id"], "client_reference_id": user_id,
            "line_items": [{"price": price, "quantity": 1}], "success_url": SUCCESS,
            "cancel_url": CANCEL, "metadata": {"user_id": user_id},
            "subscription_data": {"metadata": {"user_id": user_id}}})
        assert self.pay(session["url"]) == session["id"]
        sg = self.user(user_id)
        sub = sg.checkout_success(session["id"])
        self.drain()
        return sg, clock, cus, dict(sub)


def _stop(proc: "subprocess.Popen[bytes]") -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@pytest.fixture(scope="session")
def billing() -> Iterator[Billing]:
    """The Stripe emulator and a subgate using it, with the annual prices."""
    assert BIN.is_file(), f"{BIN} is missing: run make first"
    assert EMULATOR_BIN.is_file(), f"{EMULATOR_BIN} is missing: run make first (or EMULATOR_BIN)"
    with tempfile.TemporaryDirectory(prefix="subgate-py-billing-") as tmp:
        emu_log = Path(tmp) / "emulator.log"
        with open(emu_log, "wb") as err:
            emu = subprocess.Popen([str(EMULATOR_BIN)], stdout=subprocess.PIPE, stderr=err,
                                   env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                        "EMULATOR_LISTEN": "127.0.0.1:0",
                                        "EMULATOR_WEBHOOK_SECRET": EMU_WHSEC})
        srv = None
        try:
            assert emu.stdout is not None
            line = emu.stdout.readline().decode()
            prefix = "stripe-emulator listening on "
            assert line.startswith(prefix), f"emulator: {line!r} {emu_log.read_text()}"
            emu_base = line[len(prefix):].strip()
            out_pipe = emu.stdout
            threading.Thread(target=lambda: out_pipe.read(), daemon=True).start()  # never fills
            port = free_port()
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "JWT_SECRET": JWT_SECRET,
                "SERVICE_API_KEYS": SERVICE_KEY,
                "LISTEN": f"127.0.0.1:{port}",
                "HTTP_THREADS": "4",
                "DATABASE_URL": f"sqlite:{tmp}/subgate.db",
                "STRIPE_SECRET_KEY": EMULATOR_KEY,
                "STRIPE_API_BASE": emu_base,
                "STRIPE_WEBHOOK_SECRET": EMU_WHSEC,
                "STRIPE_PREMIUM_PRICE_ID": "price_premium_monthly",
                "STRIPE_PLUS_PRICE_ID": "price_plus_monthly",
                "STRIPE_PREMIUM_ANNUAL_PRICE_ID": "price_premium_annual",
                "STRIPE_PLUS_ANNUAL_PRICE_ID": "price_plus_annual",
            }
            log = Path(tmp) / "subgate.log"
            with open(log, "wb") as out:
                srv = subprocess.Popen([str(BIN), "serve"], cwd=tmp, env=env, stdout=out,
                                       stderr=subprocess.STDOUT)
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                assert srv.poll() is None, f"subgate exited early: {log.read_text()}"
                try:
                    with urllib.request.urlopen(base + "/healthz", timeout=1) as r:
                        if r.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    time.sleep(0.05)
            else:
                pytest.fail(f"subgate did not start: {log.read_text()}")
            b = Billing(base, emu_base)
            b.control("/_emulator/webhooks", {"url": f"{base}/api/v1/payments/webhook",
                                              "secret": EMU_WHSEC})
            yield b
        finally:
            rc = _stop(srv) if srv is not None else 0
            _stop(emu)
        assert rc == 0, f"subgate exited with {rc}: {log.read_text()[-2000:]}"
