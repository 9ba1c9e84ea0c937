"""The client against the real binary: reads, consumes, refunds, idempotency, errors."""

from __future__ import annotations

import pytest

from conftest import Server, free_port
from subgate_client import (Conflict, Forbidden, InvalidRequest, QuotaExceeded, Subgate,
                            SubgateError, Unauthorized, Unavailable)
from subgate_client.errors import error_for


def test_usage_spends_nothing_and_consume_refund_move_it(server: Server, user: str) -> None:
    sg = server.client()
    u = sg.usage(user)
    assert u.tier == "free"
    assert u.quotas["ai_minutes"].used == 0
    assert u.quotas["ai_minutes"].limit == 30
    assert sg.usage(user).quotas["ai_minutes"].used == 0

    q = sg.consume(user, "ai_minutes", 3)
    assert (q.used, q.limit, q.remaining, q.window) == (3, 30, 27, "day")
    assert sg.usage(user).quotas["ai_minutes"].used == 3

    assert sg.refund(user, "ai_minutes", 2).used == 1
    assert sg.refund(user, "ai_minutes", 100).used == 0  # never below zero
    assert sg.usage(user).quotas["ai_minutes"].remaining == 30


def test_idempotent_retry_consumes_once(server: Server, user: str) -> None:
    sg = server.client()
    first = sg.consume(user, "scenarios", 2, idempotency_key="req-1")
    again = sg.consume(user, "scenarios", 2, idempotency_key="req-1")
    assert (first.used, first.replayed) == (2, False)
    assert (again.used, again.replayed) == (2, True)
    assert sg.usage(user).quotas["scenarios"].used == 2

    sg.refund(user, "scenarios", 2, idempotency_key="req-1:refund")
    sg.refund(user, "scenarios", 2, idempotency_key="req-1:refund")
    assert sg.usage(user).quotas["scenarios"].used == 0

    with pytest.raises(Conflict) as e:  # the same key for another request
        sg.consume(user, "scenarios", 1, idempotency_key="req-1")
    assert e.value.code == "idempotency_key_reused"


def test_quota_exceeded_carries_the_state(server: Server, user: str) -> None:
    sg = server.client()
    sg.consume(user, "ai_minutes", 25)
    with pytest.raises(QuotaExceeded) as e:
        sg.consume(user, "ai_minutes", 6)
    err = e.value
    assert (err.status, err.quota, err.used, err.limit, err.remaining, err.tier) == (
        402, "ai_minutes", 25, 30, 5, "free")
    assert err.resets_at == sg.usage(user).quotas["ai_minutes"].resets_at
    assert sg.usage(user).quotas["ai_minutes"].used == 25  # nothing recorded


def test_check_and_catalogue(server: Server, user: str) -> None:
    sg = server.client()
    a = sg.check(user, "custom_ai")
    assert (a.allowed, a.tier, a.required_tier, a.reason) == (False, "free", "plus",
                                                             "not_in_tier")
    assert sg.check(user, "basic_lessons").allowed
    assert sg.tier_rank("free") < sg.tier_rank("premium") < sg.tier_rank("plus")
    with pytest.raises(ValueError):
        sg.tier_rank("gold")


def test_paid_tiers_are_unlimited(server: Server, user: str) -> None:
    server.subscribe(user, "premium")
    sg = server.client()
    q = sg.consume(user, "ai_minutes", 500)
    assert (q.tier, q.used, q.limit, q.remaining) == ("premium", 500, None, None)
    assert sg.check(user, "custom_ai").allowed is False


def test_service_errors_map_to_exceptions(server: Server, user: str) -> None:
    sg = server.client()
    with pytest.raises(InvalidRequest) as bad:
        sg.consume(user, "nope", 1)
    assert (bad.value.status, bad.value.param) == (400, "quota")
    with pytest.raises(InvalidRequest) as bad:
        sg.consume(user, "ai_minutes", 0)
    assert bad.value.param == "amount"
    with pytest.raises(InvalidRequest) as bad:
        sg.check(user, "no_such_feature")
    assert bad.value.param == "feature"
    with pytest.raises(Unauthorized):
        Subgate(server.base, "sk_not_a_configured_key_0123").usage(user)
    with pytest.raises(Unavailable) as down:
        Subgate(f"http://127.0.0.1:{free_port()}", "k", timeout=2).usage(user)
    assert down.value.code == "connection_failed"
    assert isinstance(bad.value, SubgateError) and isinstance(down.value, SubgateError)


def test_error_mapping_of_other_statuses() -> None:
    body = {"error": {"type": "api_error", "code": "service_unavailable", "message": "m"}}
    e = error_for(503, body, "req_1", 5)
    assert isinstance(e, Unavailable) and e.retry_after == 5 and e.request_id == "req_1"
    assert isinstance(error_for(429, body), Unavailable)
    assert isinstance(error_for(403, {"error": {"code": "service_key_required"}}), Forbidden)
    e = error_for(500, "not json")
    assert type(e) is SubgateError and e.code == "bad_answer"
