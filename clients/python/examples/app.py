"""The seed's AI chat and scenario endpoints on subgate: gated by tier and metered.

Run: SUBGATE_URL=http://127.0.0.1:8080 SUBGATE_SERVICE_KEY=<one of SERVICE_API_KEYS> \\
     APP_JWT_SECRET=<subgate's JWT_SECRET> python3 -m uvicorn app:app --port 8000
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from typing import Optional

from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel

from subgate_client import Subgate
from subgate_client.fastapi import Caller, Gate, Meter

app = FastAPI(title="German tutor")
subgate = Subgate(os.environ.get("SUBGATE_URL", "http://127.0.0.1:8080"),
                  os.environ["SUBGATE_SERVICE_KEY"])


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def current_user(authorization: str = Header()) -> str:
    """The app's own auth: here the same HS256 user token subgate accepts (its `sub`)."""
    try:
        head, body, sig = authorization.removeprefix("Bearer ").split(".")
        want = hmac.new(os.environ["APP_JWT_SECRET"].encode(), f"{head}.{body}".encode(),
                        hashlib.sha256).digest()
        claims = json.loads(_b64(body))
        if json.loads(_b64(head)).get("alg") != "HS256" or not hmac.compare_digest(
                want, _b64(sig)) or claims["exp"] < time.time():
            raise ValueError("bad token")
        return str(claims["sub"])
    except (ValueError, KeyError):
        raise HTTPException(401, "invalid token") from None


gate = Gate(subgate, user_id=current_user)
gate.install(app)  # 403 not in tier, 402 quota exceeded, 503 subgate unreachable


class ChatRequest(BaseModel):
    message: str
    minutes: int = 1


def ask_model(message: str) -> str:
    """Stands for the AI provider; it may raise."""
    if not message.strip():
        raise RuntimeError("the model refused an empty message")
    return f"Gute Frage! Du hast gesagt: {message}"


@app.post("/api/ai/chat")
def ai_chat(req: ChatRequest, caller: Caller = Depends(gate.require_tier("premium")),
            meter: Meter = Depends(gate.meter),
            idempotency_key: Optional[str] = Header(None)) -> dict:
    # Minutes are spent up front (402 when over the limit) and given back if the call fails;
    # a client retrying with the same Idempotency-Key is charged once.
    key = f"chat:{idempotency_key}" if idempotency_key else None
    with meter.consume("ai_minutes", req.minutes, idempotency_key=key) as spent:
        try:
            reply = ask_model(req.message)
        except RuntimeError as e:
            raise HTTPException(502, str(e)) from e  # the block raises: minutes refunded
    return {"reply": reply, "tier": caller.tier, "minutes_left": spent.quota.remaining}


@app.post("/api/scenarios/{scenario}/start")
def start_scenario(scenario: str,
                   caller: Caller = Depends(gate.require_feature("basic_lessons")),
                   meter: Meter = Depends(gate.meter)) -> dict:
    with meter.consume("scenarios", 1) as spent:  # free: 5 a week; paid tiers: unlimited
        return {"scenario": scenario, "scenarios_left": spent.quota.remaining}


@app.post("/api/ai/custom")
def custom_ai(req: ChatRequest,
              caller: Caller = Depends(gate.require_feature("custom_ai"))) -> dict:
    return {"reply": f"[custom model] {req.message}"}  # Plus and up


@app.get("/api/me/usage")
def my_usage(uid: str = Depends(current_user)) -> dict:
    u = subgate.usage(uid)  # spends nothing
    return {"tier": u.tier, "quotas": {k: {"used": q.used, "limit": q.limit,
                                            "resets_at": q.resets_at}
                                        for k, q in u.quotas.items()}}
