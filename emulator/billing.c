/*
 * billing.c: the emulator's checkout, subscription and payment lifecycle (see billing.h). The
 * events each change emits are listed in the step tables below, in the order Stripe sends them,
 * or emitted where the change is made (expiry, refunds).
 */
#include "billing.h"

#include <stdint.h>
#include <string.h>

#include "objects.h"
#include "params.h"

enum ref {
    REF_SUB,
    REF_INVOICE,
    REF_SESSION,
};

struct event_step {
    const char *type;
    enum ref about;
};

/* A checkout session paid: its subscription, the first invoice, then the session itself. */
static const struct event_step checkout_events[] = {
    { "customer.subscription.created", REF_SUB }, { "invoice.created", REF_INVOICE },
    { "invoice.finalized", REF_INVOICE },         { "invoice.paid", REF_INVOICE },
    { "invoice.payment_succeeded", REF_INVOICE }, { "checkout.session.completed", REF_SESSION },
};

/* A renewal (or a trial's end) paid: the new period, then the invoice. */
static const struct event_step renewal_paid_events[] = {
    { "customer.subscription.updated", REF_SUB }, { "invoice.created", REF_INVOICE },
    { "invoice.finalized", REF_INVOICE },         { "invoice.paid", REF_INVOICE },
    { "invoice.payment_succeeded", REF_INVOICE },
};

/* A renewal whose payment failed: the new period and status past_due (or unpaid), the invoice. */
static const struct event_step renewal_failed_events[] = {
    { "customer.subscription.updated", REF_SUB },
    { "invoice.created", REF_INVOICE },
    { "invoice.finalized", REF_INVOICE },
    { "invoice.payment_failed", REF_INVOICE },
};

struct refs {
    const json_t *sub, *invoice, *session;
    const json_t *prev; /* previous_attributes of the *.updated step */
};

static void emit_steps(struct emu *app, const struct event_step *steps, size_t n,
                       const struct refs *r, int64_t at)
{
    for (size_t i = 0; i < n; i++) {
        const json_t *obj = steps[i].about == REF_SUB       ? r->sub
                            : steps[i].about == REF_INVOICE ? r->invoice
                                                            : r->session;
        bool updated = strstr(steps[i].type, ".updated") != NULL;
        emu_emit(app, steps[i].type, obj, updated ? r->prev : NULL, at);
    }
}

enum emu_card emu_card_parse(const char *number)
{
    static const struct {
        const char *number;
        enum emu_card card;
    } cards[] = {
        { "4242424242424242", EMU_CARD_OK },
        { "4000000000000002", EMU_CARD_DECLINE },
        { "4000002500003155", EMU_CARD_3DS },
    };

    char digits[32];
    size_t n = 0;

    for (; number && *number && n + 1 < sizeof(digits); number++)
        if (*number != ' ' && *number != '-')
            digits[n++] = *number;
    digits[n] = '\0';
    for (size_t i = 0; i < ARRAY_SIZE(cards); i++)
        if (strcmp(digits, cards[i].number) == 0)
            return cards[i].card;
    return EMU_CARD_INVALID;
}

json_t *emu_customer_create(struct emu *app, const json_t *params)
{
    const char *clock = emu_param_str(params, "test_clock");
    json_t *c = emu_customer_json(params, emu_state_now(app->st, clock));

    emu_state_put(app->st, EMU_CUSTOMER, c);
    emu_emit(app, "customer.created", c, NULL, json_integer_value(json_object_get(c, "created")));
    return c;
}

static const char *str_field(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static int64_t int_field(const json_t *obj, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(obj, key));
}

/* The session's customer, created from customer_email when the session named none. */
static json_t *session_customer(struct emu *app, json_t *session)
{
    json_t *cus = emu_state_get(app->st, EMU_CUSTOMER, str_field(session, "customer"));
    json_t *params;

    if (cus)
        return cus;
    params = json_object();
    if (str_field(session, "customer_email"))
        json_object_set(params, "email", json_object_get(session, "customer_email"));
    cus = emu_customer_create(app, params);
    json_decref(params);
    json_object_set(session, "customer", json_object_get(cus, "id"));
    return cus;
}

/*
 * The card payment of a paid invoice: a PaymentIntent and its charge, whose ids the invoice
 * carries (a $0 invoice has neither, as at Stripe).
 */
static void invoice_charge(struct emu *app, json_t *inv, const char *card, int64_t now)
{
    struct emu_charge_params cp = { inv, card, now };
    json_t *pi = emu_payment_intent_json(&cp);
    json_t *ch = emu_charge_json(&cp, str_field(pi, "id"));

    json_object_set(pi, "latest_charge", json_object_get(ch, "id"));
    json_object_set(inv, "payment_intent", json_object_get(pi, "id"));
    json_object_set(inv, "charge", json_object_get(ch, "id"));
    emu_state_put(app->st, EMU_PAYMENT_INTENT, pi);
    emu_state_put(app->st, EMU_CHARGE, ch);
}

/* Creates, settles and stores an invoice for the subscription's current period. */
static json_t *invoice_for(struct emu *app, json_t *sub, json_t *cus, const char *reason,
                           int64_t amount, int64_t now)
{
    struct emu_invoice_params ip = {
        .sub = sub,
        .customer = cus,
        .billing_reason = reason,
        .amount = amount,
        .period_start = int_field(sub, "current_period_start"),
        .period_end = int_field(sub, "current_period_end"),
        .now = now,
        .public_url = app->cfg.public_url,
    };
    json_t *inv = emu_invoice_json(&ip);
    const char *card = str_field(emu_state_private(app->st, str_field(cus, "id")), "card");
    bool paid = emu_card_parse(card) != EMU_CARD_DECLINE || amount == 0;

    emu_invoice_settle(inv, paid, now);
    if (paid && amount > 0)
        invoice_charge(app, inv, card, now);
    json_object_set_new(cus, "next_invoice_sequence",
                        json_integer(int_field(cus, "next_invoice_sequence") + 1));
    json_object_set(sub, "latest_invoice", json_object_get(inv, "id"));
    emu_state_put(app->st, EMU_INVOICE, inv);
    return inv;
}

static int64_t sub_amount(const json_t *sub)
{
    return int_field(emu_subscription_price(sub), "unit_amount") * int_field(sub, "quantity");
}

static void session_complete(json_t *session, const json_t *cus, const json_t *sub,
                             const json_t *inv)
{
    bool free_trial = int_field(inv, "amount_due") == 0;

    json_object_set_new(session, "status", json_string("complete"));
    json_object_set_new(session, "payment_status",
                        json_string(free_trial ? "no_payment_required" : "paid"));
    json_object_set(session, "subscription", json_object_get(sub, "id"));
    json_object_set(session, "invoice", json_object_get(inv, "id"));
    json_object_set(session, "amount_total", json_object_get(inv, "amount_due"));
    json_object_set(session, "amount_subtotal", json_object_get(inv, "amount_due"));
    json_object_set_new(session, "url", json_null());
    json_object_set_new(
        session, "customer_details",
        json_pack("{s:n,s:O,s:O,s:n,s:s,s:n}", "address", "email", json_object_get(cus, "email"),
                  "name", json_object_get(cus, "name"), "phone", "tax_exempt", "none", "tax_ids"));
}

void emu_checkout_pay(struct emu *app, json_t *session, const char *card)
{
    json_t *priv = emu_state_private(app->st, str_field(session, "id"));
    json_t *cus = session_customer(app, session);
    const char *cus_id = str_field(cus, "id");
    struct emu_sub_params sp = {
        .customer = cus_id,
        .price = emu_state_get(app->st, EMU_PRICE, str_field(priv, "price")),
        .quantity = int_field(priv, "quantity"),
        .metadata = json_object_get(priv, "metadata"),
        .test_clock = str_field(cus, "test_clock"),
        .now = emu_state_customer_now(app->st, cus_id),
        .trial_days = int_field(priv, "trial_days"),
    };
    json_t *sub = emu_subscription_json(&sp);
    json_t *inv;
    struct refs r;

    json_object_set_new(emu_state_private(app->st, cus_id), "card", json_string(card));
    emu_state_put(app->st, EMU_SUBSCRIPTION, sub);
    inv = invoice_for(app, sub, cus, "subscription_create", sp.trial_days ? 0 : sub_amount(sub),
                      sp.now);
    session_complete(session, cus, sub, inv);
    r = (struct refs){ sub, inv, session, NULL };
    emit_steps(app, checkout_events, ARRAY_SIZE(checkout_events), &r, sp.now);
}

static int64_t sub_now(struct emu *app, const json_t *sub)
{
    return emu_state_now(app->st, str_field(sub, "test_clock"));
}

void emu_subscription_updated(struct emu *app, json_t *sub, json_t *prev)
{
    if (json_object_size(prev) > 0)
        emu_emit(app, "customer.subscription.updated", sub, prev, sub_now(app, sub));
    json_decref(prev);
}

/* Copies sub's current values of the NULL-terminated keys into a new previous_attributes. */
static json_t *capture(const json_t *sub, const char *const *keys)
{
    json_t *prev = json_object();

    for (; *keys; keys++)
        json_object_set_new(prev, *keys, json_deep_copy(json_object_get(sub, *keys)));
    return prev;
}

/* Moves the entries of changes into prev, keeping an older value prev already has. */
static void prev_merge(json_t *prev, json_t *changes)
{
    const char *key;
    json_t *v;

    json_object_foreach(changes, key, v)
    {
        if (!json_object_get(prev, key))
            json_object_set(prev, key, v);
    }
    json_decref(changes);
}

/* Drops the keys of prev whose value did not change. */
static void keep_changed(json_t *prev, const json_t *sub)
{
    const char *key;
    json_t *v;
    void *tmp;

    json_object_foreach_safe(prev, tmp, key, v)
    {
        if (json_equal(v, json_object_get(sub, key)))
            json_object_del(prev, key);
    }
}

enum emu_refund_check emu_refund_amount(int64_t amount, int64_t refunded, bool has_requested,
                                        int64_t requested, int64_t *out)
{
    int64_t left = amount - refunded;

    *out = left;
    if (left <= 0)
        return EMU_REFUND_ALREADY_REFUNDED;
    if (!has_requested)
        return EMU_REFUND_OK;
    if (requested > left)
        return EMU_REFUND_TOO_LARGE;
    *out = requested;
    return EMU_REFUND_OK;
}

json_t *emu_charge_refund(struct emu *app, json_t *charge, int64_t amount, const char *reason,
                          const json_t *metadata)
{
    static const char *const keys[] = { "amount_refunded", "refunded", NULL };
    int64_t now = emu_state_customer_now(app->st, str_field(charge, "customer"));
    struct emu_refund_params rp = { charge, amount, reason, metadata, now };
    json_t *refund = emu_refund_json(&rp);
    json_t *prev = capture(charge, keys);
    int64_t total = int_field(charge, "amount_refunded") + amount;

    json_object_set_new(charge, "amount_refunded", json_integer(total));
    json_object_set_new(charge, "refunded", json_boolean(total >= int_field(charge, "amount")));
    keep_changed(prev, charge);
    emu_state_put(app->st, EMU_REFUND, refund);
    emu_emit(app, "refund.created", refund, NULL, now);
    emu_emit(app, "charge.refunded", charge, prev, now);
    json_decref(prev);
    return refund;
}

/* The test clock a session runs on (its customer's), or NULL for the real clock. */
static const char *session_clock(const struct emu *app, const json_t *session)
{
    const json_t *cus = emu_state_get(app->st, EMU_CUSTOMER, str_field(session, "customer"));

    return str_field(cus, "test_clock");
}

static bool session_is_open(const json_t *session)
{
    const char *status = str_field(session, "status");

    return status && strcmp(status, "open") == 0;
}

void emu_checkout_expire(struct emu *app, json_t *session, int64_t at)
{
    json_object_set_new(session, "status", json_string("expired"));
    json_object_set_new(session, "url", json_null());
    json_object_del(emu_state_private(app->st, str_field(session, "id")), "pending_3ds");
    emu_emit(app, "checkout.session.expired", session, NULL, at);
}

void emu_checkout_expire_due(struct emu *app)
{
    size_t i;
    json_t *s;

    json_array_foreach(emu_state_all(app->st, EMU_SESSION), i, s)
    {
        int64_t now = emu_state_now(app->st, session_clock(app, s));
        if (session_is_open(s) && now >= int_field(s, "expires_at"))
            emu_checkout_expire(app, s, now);
    }
}

void emu_subscription_cancel_at_period_end(struct emu *app, json_t *sub, bool on, json_t *prev)
{
    static const char *const keys[] = { "cancel_at_period_end", "cancel_at", "canceled_at", NULL };
    json_t *changes;

    if (on == json_is_true(json_object_get(sub, "cancel_at_period_end")))
        return;
    changes = capture(sub, keys);
    json_object_set_new(sub, "cancel_at_period_end", json_boolean(on));
    json_object_set(sub, "cancel_at",
                    on ? json_object_get(sub, "current_period_end") : json_null());
    json_object_set_new(sub, "canceled_at", on ? json_integer(sub_now(app, sub)) : json_null());
    keep_changed(changes, sub);
    prev_merge(prev, changes);
}

static void sub_end(struct emu *app, json_t *sub, int64_t at)
{
    json_object_set_new(sub, "status", json_string("canceled"));
    json_object_set_new(sub, "ended_at", json_integer(at));
    if (json_is_null(json_object_get(sub, "canceled_at")))
        json_object_set_new(sub, "canceled_at", json_integer(at));
    json_object_set_new(json_object_get(sub, "cancellation_details"), "reason",
                        json_string("cancellation_requested"));
    emu_emit(app, "customer.subscription.deleted", sub, NULL, at);
}

void emu_subscription_cancel_now(struct emu *app, json_t *sub)
{
    int64_t now = sub_now(app, sub);

    json_object_set_new(sub, "canceled_at", json_integer(now));
    sub_end(app, sub, now);
}

void emu_subscription_switch(json_t *sub, const json_t *price, json_t *prev)
{
    static const char *const keys[] = { "items", "plan", NULL };

    if (json_equal(emu_subscription_price(sub), price))
        return;
    prev_merge(prev, capture(sub, keys));
    emu_subscription_set_price(sub, price);
}

void emu_metadata_update(json_t *obj, json_t *update, json_t *prev)
{
    json_t *md = json_object_get(obj, "metadata");
    json_t *old = json_deep_copy(md);
    const char *key;
    json_t *v;

    if (json_is_string(update))
        json_object_clear(md);
    json_object_foreach(update, key, v)
    {
        if (json_string_length(v) == 0)
            json_object_del(md, key);
        else
            json_object_set(md, key, v);
    }
    if (!json_equal(old, md) && !json_object_get(prev, "metadata"))
        json_object_set(prev, "metadata", old);
    json_decref(old);
}

/* A new period: the next invoice, paid or failed, and the status that follows. */
static void sub_renew(struct emu *app, json_t *sub, int64_t at)
{
    static const char *const keys[] = { "current_period_start", "current_period_end", "status",
                                        "latest_invoice", NULL };
    json_t *prev = capture(sub, keys);
    json_t *cus = emu_state_get(app->st, EMU_CUSTOMER, str_field(sub, "customer"));
    int64_t start = int_field(sub, "current_period_end");
    const char *was = str_field(sub, "status");
    bool failing = strcmp(was, "past_due") == 0 || strcmp(was, "unpaid") == 0;
    json_t *inv;
    bool paid;
    struct refs r;

    emu_subscription_set_period(sub, start, emu_add_month(start));
    inv = invoice_for(app, sub, cus, "subscription_cycle", sub_amount(sub), at);
    paid = json_is_true(json_object_get(inv, "paid"));
    json_object_set_new(sub, "status",
                        json_string(paid      ? "active"
                                    : failing ? "unpaid"
                                              : "past_due"));
    keep_changed(prev, sub);
    r = (struct refs){ sub, inv, NULL, prev };
    if (paid)
        emit_steps(app, renewal_paid_events, ARRAY_SIZE(renewal_paid_events), &r, at);
    else
        emit_steps(app, renewal_failed_events, ARRAY_SIZE(renewal_failed_events), &r, at);
    json_decref(prev);
}

enum due_kind {
    DUE_NONE,
    DUE_TRIAL_WARNING,  /* customer.subscription.trial_will_end */
    DUE_TRIAL_END,      /* trialing -> active (or past_due) with its first charge */
    DUE_PERIOD_END,     /* renewal, or the scheduled cancellation */
    DUE_SESSION_EXPIRY, /* an open checkout session reaches its expires_at */
};

struct due {
    json_t *obj; /* the subscription, or the session of DUE_SESSION_EXPIRY */
    enum due_kind kind;
    int64_t at;
};

static struct due sub_next_due(struct emu *app, json_t *sub)
{
    const char *status = str_field(sub, "status");
    json_t *priv = emu_state_private(app->st, str_field(sub, "id"));
    int64_t end = int_field(sub, "current_period_end");

    if (strcmp(status, "trialing") == 0) {
        int64_t warn = int_field(sub, "trial_end") - EMU_TRIAL_WARNING_S;
        if (!json_is_true(json_object_get(priv, "trial_warned")))
            return (struct due){ sub, DUE_TRIAL_WARNING, warn };
        return (struct due){ sub, DUE_TRIAL_END, end };
    }
    if (strcmp(status, "canceled") == 0 || strcmp(status, "incomplete_expired") == 0)
        return (struct due){ sub, DUE_NONE, 0 };
    return (struct due){ sub, DUE_PERIOD_END, end };
}

/* Keeps in *best the earlier of *best and d, when d is due at or before limit. */
static void due_consider(struct due *best, struct due d, int64_t limit)
{
    if (d.kind != DUE_NONE && d.at <= limit && (best->kind == DUE_NONE || d.at < best->at))
        *best = d;
}

static bool on_clock(const char *clock, const char *clock_id)
{
    return clock && strcmp(clock, clock_id) == 0;
}

/* The earliest thing due on the clock at or before limit; kind DUE_NONE when nothing. */
static struct due clock_next_due(struct emu *app, const char *clock_id, int64_t limit)
{
    struct due best = { NULL, DUE_NONE, 0 };
    size_t i;
    json_t *obj;

    json_array_foreach(emu_state_all(app->st, EMU_SUBSCRIPTION), i, obj)
    {
        if (on_clock(str_field(obj, "test_clock"), clock_id))
            due_consider(&best, sub_next_due(app, obj), limit);
    }
    json_array_foreach(emu_state_all(app->st, EMU_SESSION), i, obj)
    {
        if (session_is_open(obj) && on_clock(session_clock(app, obj), clock_id))
            due_consider(&best,
                         (struct due){ obj, DUE_SESSION_EXPIRY, int_field(obj, "expires_at") },
                         limit);
    }
    return best;
}

static void due_run(struct emu *app, const struct due *d, int64_t at)
{
    switch (d->kind) {
    case DUE_TRIAL_WARNING:
        json_object_set_new(emu_state_private(app->st, str_field(d->obj, "id")), "trial_warned",
                            json_true());
        emu_emit(app, "customer.subscription.trial_will_end", d->obj, NULL, at);
        break;
    case DUE_TRIAL_END:
        sub_renew(app, d->obj, at);
        break;
    case DUE_PERIOD_END:
        if (json_is_true(json_object_get(d->obj, "cancel_at_period_end")))
            sub_end(app, d->obj, at);
        else
            sub_renew(app, d->obj, at);
        break;
    case DUE_SESSION_EXPIRY:
        emu_checkout_expire(app, d->obj, at);
        break;
    case DUE_NONE:
        break;
    }
}

#define CLOCK_MAX_STEPS 10000 /* a guard: years of monthly renewals for many subscriptions */

void emu_clock_advance(struct emu *app, json_t *clock, int64_t frozen_time)
{
    const char *id = str_field(clock, "id");

    for (int steps = 0; steps < CLOCK_MAX_STEPS; steps++) {
        struct due d = clock_next_due(app, id, frozen_time);
        int64_t at;
        if (d.kind == DUE_NONE)
            break;
        at = d.at > int_field(clock, "frozen_time") ? d.at : int_field(clock, "frozen_time");
        json_object_set_new(clock, "frozen_time", json_integer(at));
        due_run(app, &d, at);
    }
    json_object_set_new(clock, "frozen_time", json_integer(frozen_time));
    json_object_set_new(clock, "status", json_string("ready"));
    emu_emit(app, "test_helpers.test_clock.ready", clock, NULL, frozen_time);
}
