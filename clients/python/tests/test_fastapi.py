"""A new FastAPI app on the client (the seed's AI chat and scenario endpoints), gated by tier and
feature and metered, served by TestClient and by uvicorn against the real binary."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Iterator, Optional

import pytest
import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.testclient import TestClient
from pydantic import BaseModel

from conftest import Server, free_port
from subgate_client import Subgate
from subgate_client.fastapi import Caller, Gate, Meter


class Chat(BaseModel):
    message: str
    minutes: int = 1
    fail: bool = False  # the AI provider fails this call


def make_app(sg: Subgate) -> FastAPI:
    app = FastAPI()

    def current_user(x_user: str = Header()) -> str:  # the app's own auth, trusted in a test
        return x_user

    gate = Gate(sg, user_id=current_user)
    gate.install(app)

    @app.post("/api/ai/chat")
    def ai_chat(chat: Chat, caller: Caller = Depends(gate.require_tier("premium")),
                meter: Meter = Depends(gate.meter),
                idempotency_key: Optional[str] = Header(None)) -> dict:
        key = f"chat:{idempotency_key}" if idempotency_key else None
        with meter.consume("ai_minutes", chat.minutes, idempotency_key=key):
            if chat.fail:
                raise HTTPException(502, "the AI provider failed")
            return {"reply": f"echo: {chat.message}", "tier": caller.tier}

    @app.post("/api/scenarios/start")
    def start_scenario(caller: Caller = Depends(gate.require_feature("basic_lessons")),
                       meter: Meter = Depends(gate.meter)) -> dict:
        with meter.consume("scenarios", 1) as r:
            return {"scenario": "at_the_bakery", "remaining": r.quota.remaining}

    @app.post("/api/ai/custom")
    def custom_ai(caller: Caller = Depends(gate.require_feature("custom_ai"))) -> dict:
        return {"model": "custom", "user": caller.user_id}

    return app


@pytest.fixture
def app_client(server: Server) -> Iterator[TestClient]:
    with TestClient(make_app(server.client())) as c:
        yield c


def minutes(server: Server, user: str) -> int:
    return server.client().usage(user).quotas["ai_minutes"].used


def test_free_user_gets_403_and_premium_200(server: Server, app_client: TestClient,
                                            user: str) -> None:
    r = app_client.post("/api/ai/chat", json={"message": "hallo"}, headers={"X-User": user})
    assert r.status_code == 403
    err = r.json()["error"]
    assert (err["code"], err["tier"], err["required_tier"]) == ("not_in_tier", "free",
                                                                 "premium")
    assert minutes(server, user) == 0  # refused before any metering

    server.subscribe(user, "premium")
    r = app_client.post("/api/ai/chat", json={"message": "hallo", "minutes": 3},
                        headers={"X-User": user})
    assert r.status_code == 200, r.text
    assert r.json() == {"reply": "echo: hallo", "tier": "premium"}
    assert minutes(server, user) == 3


def test_higher_tier_passes_a_lower_requirement(server: Server, app_client: TestClient,
                                                user: str) -> None:
    server.subscribe(user, "plus")
    h = {"X-User": user}
    assert app_client.post("/api/ai/chat", json={"message": "x"}, headers=h).status_code == 200
    assert app_client.post("/api/ai/custom", headers=h).status_code == 200


def test_feature_gate(server: Server, app_client: TestClient, user: str) -> None:
    server.subscribe(user, "premium")
    r = app_client.post("/api/ai/custom", headers={"X-User": user})
    assert r.status_code == 403
    err = r.json()["error"]
    assert (err["feature"], err["tier"], err["required_tier"]) == ("custom_ai", "premium",
                                                                   "plus")


def test_failed_call_is_refunded(server: Server, app_client: TestClient, user: str) -> None:
    server.subscribe(user, "premium")
    h = {"X-User": user}
    assert app_client.post("/api/ai/chat", json={"message": "a", "minutes": 4},
                           headers=h).status_code == 200
    r = app_client.post("/api/ai/chat", json={"message": "b", "minutes": 5, "fail": True},
                        headers=h)
    assert r.status_code == 502
    assert minutes(server, user) == 4


def test_retry_with_idempotency_key_consumes_once(server: Server, app_client: TestClient,
                                                  user: str) -> None:
    server.subscribe(user, "premium")
    h = {"X-User": user, "Idempotency-Key": "chat-42"}
    for _ in range(3):
        r = app_client.post("/api/ai/chat", json={"message": "a", "minutes": 2}, headers=h)
        assert r.status_code == 200
    assert minutes(server, user) == 2


def test_quota_exceeded_is_402(server: Server, app_client: TestClient, user: str) -> None:
    h = {"X-User": user}
    left = [app_client.post("/api/scenarios/start", headers=h) for _ in range(5)]
    assert [r.json()["remaining"] for r in left] == [4, 3, 2, 1, 0]
    r = app_client.post("/api/scenarios/start", headers=h)
    assert r.status_code == 402
    err = r.json()["error"]
    assert (err["code"], err["quota"], err["used"], err["limit"]) == (
        "quota_exceeded", "scenarios", 5, 5)
    assert err["resets_at"] > time.time()
    assert server.client().usage(user).quotas["scenarios"].used == 5


def test_subgate_down_is_503(user: str) -> None:
    app = make_app(Subgate(f"http://127.0.0.1:{free_port()}", "sk_svc_x", timeout=2))
    with TestClient(app) as c:
        r = c.post("/api/scenarios/start", headers={"X-User": user})
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "1"


def test_served_by_uvicorn(server: Server, user: str) -> None:
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(make_app(server.client()), host="127.0.0.1",
                                        port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if srv.started:
                break
            time.sleep(0.05)
        assert srv.started
        server.subscribe(user, "premium")

        def chat(fail: bool) -> int:
            body = json.dumps({"message": "hi", "minutes": 7, "fail": fail}).encode()
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/ai/chat", data=body, method="POST",
                headers={"Content-Type": "application/json", "X-User": user})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return int(r.status)
            except urllib.error.HTTPError as e:
                return e.code

        assert chat(False) == 200
        assert chat(True) == 502
        assert minutes(server, user) == 7
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
