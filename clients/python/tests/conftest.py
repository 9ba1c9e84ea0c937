"""Fixtures: the real subgate binary on a free loopback port with a fresh SQLite database, and
paid users made by signed Stripe webhooks (HMAC-SHA256 over "<t>.<body>", as Stripe signs)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from subgate_client import Subgate  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("SUBGATE_BIN", REPO / "build/release/subgate")).resolve()
SERVICE_KEY = "sk_svc_pyclient_0123456789"
JWT_SECRET = "pyclient-secret-0123456789-abcdefghij"
WHSEC = "whsec_pyclient_0123456789abcdef"
PRICES = {"premium": "price_py_premium", "plus": "price_py_plus"}


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


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    assert BIN.is_file(), f"{BIN} is missing: run make first"
    with tempfile.TemporaryDirectory(prefix="subgate-py-") as tmp:
        port = free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
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
