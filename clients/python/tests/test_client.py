"""The client against the real binary: reads, consumes, refunds, idempotency, errors, entitlement
tokens verified locally; and the user client's plan changes against subgate in front of the
Stripe emulator, on test clocks."""

from __future__ import annotations

import pytest

from conftest import (CANCEL, DAY, SERVICE_KEY, SUCCESS, T0, Billing, Server, free_port,
                      new_p256_key_pem, user_token)
from subgate_client import (Conflict, EntitlementTokenError, Forbidden, InvalidRequest, NotFound,
                            PaymentPending, QuotaExceeded, Subgate, SubgateError, Unauthorized,
                            Unavailable, UserClient, verify_entitlement_token)
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


def test_granted_units_and_the_ledger(server: Server, user: str) -> None:
    sg = server.client()
    sg.consume(user, "ai_minutes", 30)
    g = sg.grant_units(user, "ai_minutes", 5, "balance", reason="top-up", idempotency_key="t-1")
    assert (g["kind"], g["amount"], g["usage"]["balance"], g["usage"]["remaining"]) == (
        "grant", 5, 5, 5)
    assert sg.grant_units(user, "ai_minutes", 5, "balance", reason="top-up",
                          idempotency_key="t-1")["id"] == g["id"]  # granted once
    q = sg.consume(user, "ai_minutes", 2)
    assert (q.used, q.balance, q.remaining) == (32, 3, 3)
    assert sg.usage(user).quotas["ai_minutes"].balance == 3
    with pytest.raises(QuotaExceeded):
        sg.consume(user, "ai_minutes", 4)
    with pytest.raises(InvalidRequest):
        sg.grant_units(user, "ai_minutes", 5, "forever")
    page = sg.ledger(user, limit=2)
    assert [(e["kind"], e["amount"], e["balance_change"]) for e in page["data"]] == [
        ("consume", 2, -2), ("grant", 5, 5)]
    assert page["has_more"] is True
    rest = sg.ledger(user, before=page["next_before"])
    assert [e["kind"] for e in rest["data"]] == ["consume"]
    assert rest["has_more"] is False


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
    assert down.value.type == "connection_error" and down.value.status == 0  # as the JS client
    assert isinstance(bad.value, SubgateError) and isinstance(down.value, SubgateError)


def test_error_mapping_of_other_statuses() -> None:
    body = {"error": {"type": "api_error", "code": "service_unavailable", "message": "m"}}
    e = error_for(503, body, "req_1", 5)
    assert isinstance(e, Unavailable) and e.retry_after == 5 and e.request_id == "req_1"
    assert isinstance(error_for(429, body), Unavailable)
    assert isinstance(error_for(403, {"error": {"code": "service_key_required"}}), Forbidden)
    pending = error_for(402, {"error": {"type": "card_error", "code": "payment_pending"}})
    assert isinstance(pending, PaymentPending) and not isinstance(pending, QuotaExceeded)
    assert isinstance(error_for(402, {"error": {"code": "quota_exceeded"}}), QuotaExceeded)
    e = error_for(500, "not json")
    assert type(e) is SubgateError and e.code == "bad_answer"


def test_preview_then_upgrade_charges_the_previewed_amount(billing: Billing) -> None:
    sg, clock, _, sub = billing.subscriber("py_plan_up")
    assert (sub["tier"], sub["interval"], sub["pending_change"]) == ("premium", "month", None)
    billing.advance(clock, T0 + 10 * DAY)
    p = sg.preview_plan_change("plus")
    assert (p["change"], p["tier"], p["interval"], p["price_id"]) == (
        "upgrade", "plus", "month", "price_plus_monthly")
    # 21 of 31 days left: plus for them, less the unused premium, each rounded to the cent.
    assert p["amount_due_now"] == round(1999 * 21 / 31) - round(999 * 21 / 31)
    assert p["effective_at"] == T0 + 10 * DAY
    assert p["next_invoice"] == {"amount_due": 1999, "currency": "usd", "date": T0 + 31 * DAY}
    assert sg.subscription()["tier"] == "premium"  # a preview changes nothing

    r = sg.change_plan("plus")
    assert (r["tier"], r["price_id"], r["pending_change"]) == ("plus", "price_plus_monthly", None)
    assert (r["change"]["type"], r["change"]["status"]) == ("upgrade", "applied")
    assert r["change"]["invoice"]["amount_paid"] == p["amount_due_now"]
    invoices = billing.stripe("GET", "/v1/invoices", {"subscription": sub["id"]})["data"]
    assert invoices[0]["amount_paid"] == p["amount_due_now"]
    billing.drain()
    assert sg.subscription()["tier"] == "plus"


def test_downgrade_is_scheduled_and_cancel_plan_change_withdraws_it(billing: Billing) -> None:
    sg, _, _, sub = billing.subscriber("py_plan_down", "price_plus_monthly")
    end = sub["current_period_end"]
    r = sg.change_plan("premium", interval="month")
    assert (r["change"]["type"], r["change"]["status"], r["change"]["effective_at"]) == (
        "downgrade", "scheduled", end)
    assert r["tier"] == "plus"  # kept until the period end
    pending = r["pending_change"]
    assert pending is not None
    assert (pending["type"], pending["tier"], pending["effective_at"]) == ("downgrade", "premium",
                                                                          end)
    billing.drain()
    w = sg.cancel_plan_change()
    assert (w["change"]["status"], w["pending_change"], w["tier"]) == ("withdrawn", None, "plus")
    assert sg.cancel_plan_change()["change"]["status"] == "unchanged"


def test_cancel_then_resume_subscription(billing: Billing) -> None:
    sg, clock, _, sub = billing.subscriber("py_plan_resume")
    assert sg.cancel()["cancel_at_period_end"] is True
    with pytest.raises(Conflict) as e:  # no plan change while it is ending
        sg.change_plan("plus")
    assert (e.value.status, e.value.code) == (409, "subscription_canceling")
    r = sg.resume_subscription()
    assert (r["cancel_at_period_end"], r["change"]["status"]) == (False, "resumed")
    assert sg.resume_subscription()["change"]["status"] == "unchanged"
    billing.drain()
    billing.advance(clock, sub["current_period_end"] + 60)
    s = sg.subscription()
    assert (s["status"], s["tier"], s["current_period_start"]) == (
        "active", "premium", sub["current_period_end"])


def test_plan_change_errors_map_to_exceptions(billing: Billing) -> None:
    sg, clock, cus, _ = billing.subscriber("py_plan_errors")
    with pytest.raises(InvalidRequest) as bad:
        sg.change_plan("gold")
    assert (bad.value.status, bad.value.param) == (400, "tier")
    assert bad.value.code and bad.value.request_id
    with pytest.raises(InvalidRequest) as bad:
        sg.preview_plan_change("plus", interval="week")
    assert (bad.value.status, bad.value.param) == (400, "interval")
    with pytest.raises(NotFound):
        billing.user("py_plan_nobody").cancel_plan_change()
    with pytest.raises(Unauthorized):
        UserClient(billing.base, "not-a-jwt").resume_subscription()
    billing.advance(clock, T0 + 10 * DAY)
    billing.control(f"/_emulator/customers/{cus['id']}/card", {"card": "4000000000000002"})
    with pytest.raises(PaymentPending) as declined:
        sg.change_plan("plus")
    assert (declined.value.status, declined.value.code) == (402, "payment_pending")
    assert not isinstance(declined.value, QuotaExceeded)
    billing.drain()
    pending = sg.subscription()["pending_change"]
    assert pending is not None and pending["status"] == "payment_pending"


def test_checkout_per_year(billing: Billing) -> None:
    sg = Subgate(billing.base, SERVICE_KEY).for_user(user_token("py_plan_checkout_year"))
    session = sg.checkout("premium", SUCCESS, CANCEL, interval="year")
    s = sg.checkout_success(billing.pay(session["url"]))
    assert (s["tier"], s["interval"], s["price_id"]) == ("premium", "year", "price_premium_annual")


def _resigned(token: str) -> str:
    """token's header and claims signed again with a new P-256 key (the header keeps its kid)."""
    import base64

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    key = serialization.load_pem_private_key(new_p256_key_pem(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    head, body, _ = token.split(".")
    r, s = decode_dss_signature(key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256())))
    sig = base64.urlsafe_b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return f"{head}.{body}.{sig.decode().rstrip('=')}"


def test_entitlement_token_verifies_locally(server: Server, user: str) -> None:
    server.subscribe(user, "plus")
    sg = server.client()
    sg.consume(user, "ai_minutes", 2)
    got = sg.entitlement_token(user)
    jwks = sg.jwks()
    assert got["kid"] == jwks["keys"][0]["kid"]
    claims = verify_entitlement_token(got["token"], jwks, issuer="subgate")
    assert claims["sub"] == user and claims["exp"] == got["expires_at"]
    usage = sg.usage(user)
    assert claims["tier"] == usage.tier == "plus"
    assert claims["quotas"]["ai_minutes"]["used"] == 2
    assert set(claims["quotas"]) == set(usage.quotas)
    assert claims["features"] == next(t.features for t in sg.tiers() if t.id == "plus")
    own = sg.for_user(user_token(user)).entitlement_token()
    assert verify_entitlement_token(own["token"], jwks)["sub"] == user


def test_entitlement_token_refused_expired_or_under_another_key(server: Server, user: str) -> None:
    sg = server.client()
    got = sg.entitlement_token(user)
    jwks = sg.jwks()
    exp = got["expires_at"]
    verify_entitlement_token(got["token"], jwks, now=exp + 30)  # within the leeway
    for now, leeway in ((exp + 61, 60), (exp + 1, 0)):
        with pytest.raises(EntitlementTokenError) as e:
            verify_entitlement_token(got["token"], jwks, now=now, leeway=leeway)
        assert e.value.code == "expired"
    with pytest.raises(EntitlementTokenError) as e:
        verify_entitlement_token(_resigned(got["token"]), jwks)
    assert e.value.code == "signature"
    other = {"keys": [dict(jwks["keys"][0], kid="another")]}
    with pytest.raises(EntitlementTokenError) as e:
        verify_entitlement_token(got["token"], other)
    assert e.value.code == "unknown_kid"
    with pytest.raises(EntitlementTokenError) as e:
        verify_entitlement_token(got["token"], jwks, issuer="someone-else")
    assert e.value.code == "issuer"
    with pytest.raises(EntitlementTokenError) as e:
        verify_entitlement_token(got["token"], jwks, audience="app.example")
    assert e.value.code == "audience"
    head = got["token"].split(".", 1)[1]
    with pytest.raises(EntitlementTokenError) as e:
        verify_entitlement_token("eyJhbGciOiJub25lIn0." + head, jwks)
    assert e.value.code == "alg"
