"""The README's example app (examples/app.py), as written, against the real binary."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import json
import time
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from conftest import JWT_SECRET, SERVICE_KEY, Server


def token(sub: str, secret: str = JWT_SECRET) -> str:
    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": sub, "exp": int(time.time()) + 600}).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"Bearer {head}.{body}.{b64(sig)}"


@pytest.fixture
def example(server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("SUBGATE_URL", server.base)
    monkeypatch.setenv("SUBGATE_SERVICE_KEY", SERVICE_KEY)
    monkeypatch.setenv("APP_JWT_SECRET", JWT_SECRET)
    path = Path(__file__).resolve().parents[1] / "examples" / "app.py"
    spec = importlib.util.spec_from_file_location("example_app", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    yield mod


def test_example_app(server: Server, example: ModuleType, user: str) -> None:
    h = {"Authorization": token(user)}
    with TestClient(example.app) as c:
        assert c.post("/api/ai/chat", json={"message": "Hallo"},
                      headers={"Authorization": token(user, "x" * 40)}).status_code == 401
        r = c.post("/api/ai/chat", json={"message": "Hallo"}, headers=h)
        assert r.status_code == 403 and r.json()["error"]["required_tier"] == "premium"
        r = c.post("/api/scenarios/bakery/start", headers=h)
        assert r.json() == {"scenario": "bakery", "scenarios_left": 4}
        assert c.post("/api/ai/custom", json={"message": "x"}, headers=h).status_code == 403

        server.subscribe(user, "premium")
        r = c.post("/api/ai/chat", json={"message": "Hallo", "minutes": 2}, headers=h)
        assert r.status_code == 200 and r.json()["tier"] == "premium"
        r = c.post("/api/ai/chat", json={"message": " ", "minutes": 9}, headers=h)
        assert r.status_code == 502
        hk = {**h, "Idempotency-Key": "k1"}
        for _ in range(2):
            assert c.post("/api/ai/chat", json={"message": "Noch", "minutes": 3},
                          headers=hk).status_code == 200
        usage = c.get("/api/me/usage", headers=h).json()
        assert usage["tier"] == "premium"
        assert usage["quotas"]["ai_minutes"]["used"] == 5  # 2 + 3 once; the failed 9 refunded
        assert usage["quotas"]["scenarios"]["used"] == 1
