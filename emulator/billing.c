/*
 * billing.c: the emulator's checkout, subscription and payment lifecycle (see billing.h). The
 * events each change emits are listed in the step tables below, in the order Stripe sends them,
 * or emitted where the change is made (expiry, refunds).
 */
#include "billing.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

/* The events of a finalized invoice after its collection, by outcome. */
static const char *const paid_events[] = { "invoice.paid", "invoice.payment_succeeded", NULL };
static const char *const failed_events[] = { "invoice.payment_failed", NULL };
static const char *const action_events[] = { "invoice.payment_action_required", NULL };

enum emu_card emu_card_parse(const char *number)
{
    static const struct {
        const char *number;
        enum emu_card card;
    } cards[] = {
        { "4242424242424242", EMU_CARD_OK },
        { "4000000000000002", EMU_CARD_DECLINE },
        { "4000002500003155", EMU_CARD_3DS },
        { "4000002760003184", EMU_CARD_3DS_ALWAYS },
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

int64_t emu_prorate(int64_t amount, int64_t period_start, int64_t period_end, int64_t at)
{
    int64_t len = period_end - period_start;

    if (len <= 0 || at >= period_end)
        return 0;
    if (at <= period_start)
        return amount;
    return emu_round_div(amount * (period_end - at), len);
}

static int64_t sub_quantity(const json_t *sub)
{
    int64_t q = int_field(sub, "quantity");

    return q > 0 ? q : 1;
}

static int64_t sub_amount(const json_t *sub)
{
    return int_field(emu_subscription_price(sub), "unit_amount") * sub_quantity(sub);
}

static const char *product_name(struct emu *app, const json_t *price)
{
    const json_t *prod = emu_state_get(app->st, EMU_PRODUCT, str_field(price, "product"));
    const char *name = str_field(prod, "name");

    return name ? name : "plan";
}

static void day_str(char *out, size_t len, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(out, len, "%d %b %Y", &tm);
}

/* A subscription line: qty x price for [start, end), amount given (0 for a trial). */
static json_t *sub_line(struct emu *app, const json_t *sub, const json_t *price, int64_t amount,
                        int64_t start, int64_t end)
{
    char desc[256];
    struct emu_line_params lp = { sub, price, sub_quantity(sub), amount, desc, start,
                                  end, false, "subscription" };

    snprintf(desc, sizeof(desc), "%lld × %s (at $%lld.%02lld / %s)", (long long)sub_quantity(sub),
             product_name(app, price), (long long)(int_field(price, "unit_amount") / 100),
             (long long)(int_field(price, "unit_amount") % 100), emu_price_interval(price));
    return emu_line_json(&lp);
}

/* A proration line: "Unused time on …" (a credit) or "Remaining time on …" after `at`. */
static json_t *proration_line(struct emu *app, const json_t *sub, const json_t *price, bool credit,
                              int64_t at)
{
    char desc[256], day[32];
    int64_t start = int_field(sub, "current_period_start"),
            end = int_field(sub, "current_period_end");
    int64_t amount =
        emu_prorate(int_field(price, "unit_amount") * sub_quantity(sub), start, end, at);
    struct emu_line_params lp = {
        sub, price, sub_quantity(sub), credit ? -amount : amount, desc, at, end, true, "invoiceitem"
    };

    day_str(day, sizeof(day), at);
    snprintf(desc, sizeof(desc), "%s time on %s after %s", credit ? "Unused" : "Remaining",
             product_name(app, price), day);
    return emu_line_json(&lp);
}

/* The terms an invoice of sub gets at `at`: its discount while it lasts, automatic tax. */
static struct emu_invoice_terms sub_terms(const json_t *sub, const json_t *cus, int64_t at)
{
    const json_t *d = json_object_get(sub, "discount");
    const json_t *end = json_object_get(d, "end");
    struct emu_invoice_terms t = { NULL, 0, false, int_field(cus, "balance") };

    if (json_is_object(d) && (!json_is_integer(end) || json_integer_value(end) > at)) {
        t.discount = d;
        t.percent_off_bp = (int64_t)(json_number_value(json_object_get(json_object_get(d, "coupon"),
                                                                       "percent_off")) *
                                         100.0 +
                                     0.5);
    }
    t.tax = json_is_true(json_object_get(json_object_get(sub, "automatic_tax"), "enabled"));
    return t;
}

/* The subscription's pending invoice items (prorations awaiting the next invoice). */
static json_t *pending_items(struct emu *app, const json_t *sub)
{
    json_t *priv = emu_state_private(app->st, str_field(sub, "id"));

    if (!json_is_array(json_object_get(priv, "pending")))
        json_object_set_new(priv, "pending", json_array());
    return json_object_get(priv, "pending");
}

struct invoice_spec {
    json_t *sub, *cus;
    const char *reason;
    const json_t *lines;
    int64_t start, end; /* its period */
    int64_t at;
};

/* A new invoice with its totals, not stored (a preview when nothing else is done with it). */
static json_t *invoice_make(struct emu *app, const struct invoice_spec *sp, int64_t *balance_after)
{
    struct emu_invoice_params ip = {
        .sub = sp->sub,
        .customer = sp->cus,
        .billing_reason = sp->reason,
        .period_start = sp->start,
        .period_end = sp->end,
        .now = sp->at,
        .public_url = app->cfg.public_url,
        .lines = sp->lines,
    };
    json_t *inv = emu_invoice_json(&ip);
    struct emu_invoice_terms t = sub_terms(sp->sub, sp->cus, sp->at);
    int64_t after = emu_invoice_total(inv, &t);

    if (balance_after)
        *balance_after = after;
    return inv;
}

/* What charging the customer's card off-session does now. */
static enum emu_pay card_outcome(struct emu *app, const char *cus_id)
{
    const char *card = str_field(emu_state_private(app->st, cus_id), "card");

    switch (emu_card_parse(card)) {
    case EMU_CARD_DECLINE:
        return EMU_PAY_DECLINED;
    case EMU_CARD_3DS_ALWAYS:
        return EMU_PAY_ACTION;
    case EMU_CARD_OK:
    case EMU_CARD_3DS:
    case EMU_CARD_INVALID:
        break;
    }
    return EMU_PAY_OK;
}

enum emu_pay emu_customer_pay_outcome(struct emu *app, const char *cus_id)
{
    return card_outcome(app, cus_id);
}

/*
 * Creates, finalizes, collects and stores an invoice; on_session payments (checkout) pass
 * whatever the card; the customer's balance and invoice sequence move on.
 */
static json_t *invoice_issue(struct emu *app, const struct invoice_spec *sp, bool on_session)
{
    int64_t balance = 0;
    json_t *inv = invoice_make(app, sp, &balance);
    const char *cus_id = str_field(sp->cus, "id");
    const char *card = str_field(emu_state_private(app->st, cus_id), "card");
    int64_t due = int_field(inv, "amount_due");
    enum emu_pay pay = due == 0 || on_session ? EMU_PAY_OK : card_outcome(app, cus_id);

    emu_invoice_settle(inv, pay == EMU_PAY_OK, sp->at);
    if (pay == EMU_PAY_OK && due > 0)
        invoice_charge(app, inv, card, sp->at);
    if (pay == EMU_PAY_ACTION)
        json_object_set_new(emu_state_private(app->st, str_field(inv, "id")), "requires_action",
                            json_true());
    json_object_set_new(sp->cus, "balance", json_integer(balance));
    json_object_set_new(sp->cus, "next_invoice_sequence",
                        json_integer(int_field(sp->cus, "next_invoice_sequence") + 1));
    json_object_set(sp->sub, "latest_invoice", json_object_get(inv, "id"));
    emu_state_put(app->st, EMU_INVOICE, inv);
    return inv;
}

enum emu_pay emu_invoice_outcome(struct emu *app, const json_t *inv)
{
    if (json_is_true(json_object_get(inv, "paid")))
        return EMU_PAY_OK;
    if (json_is_true(
            json_object_get(emu_state_private(app->st, str_field(inv, "id")), "requires_action")))
        return EMU_PAY_ACTION;
    return EMU_PAY_DECLINED;
}

void emu_invoice_events(struct emu *app, const json_t *inv, int64_t at)
{
    enum emu_pay pay = emu_invoice_outcome(app, inv);
    const char *const *after = pay == EMU_PAY_OK       ? paid_events
                               : pay == EMU_PAY_ACTION ? action_events
                                                       : failed_events;

    emu_emit(app, "invoice.created", inv, NULL, at);
    emu_emit(app, "invoice.finalized", inv, NULL, at);
    for (; *after; after++)
        emu_emit(app, *after, inv, NULL, at);
}

static void session_complete(json_t *session, const json_t *cus, const json_t *sub,
                             const json_t *inv)
{
    bool free_trial = int_field(inv, "amount_due") == 0 && int_field(inv, "subtotal") == 0;
    int64_t discount = int_field(inv, "subtotal") - int_field(inv, "total_excluding_tax");

    json_object_set_new(session, "status", json_string("complete"));
    json_object_set_new(session, "payment_status",
                        json_string(free_trial ? "no_payment_required" : "paid"));
    json_object_set(session, "subscription", json_object_get(sub, "id"));
    json_object_set(session, "invoice", json_object_get(inv, "id"));
    json_object_set(session, "amount_total", json_object_get(inv, "total"));
    json_object_set(session, "amount_subtotal", json_object_get(inv, "subtotal"));
    json_object_set_new(session, "total_details",
                        json_pack("{s:I,s:i,s:I}", "amount_discount", (json_int_t)discount,
                                  "amount_shipping", 0, "amount_tax",
                                  (json_int_t)int_field(inv, "tax")));
    if (json_is_true(json_object_get(json_object_get(session, "automatic_tax"), "enabled")))
        json_object_set_new(json_object_get(session, "automatic_tax"), "status",
                            json_string("complete"));
    json_object_set_new(session, "url", json_null());
    json_object_set_new(
        session, "customer_details",
        json_pack("{s:O,s:O,s:O,s:n,s:s,s:[]}", "address", json_object_get(cus, "address"), "email",
                  json_object_get(cus, "email"), "name", json_object_get(cus, "name"), "phone",
                  "tax_exempt", "none", "tax_ids"));
}

/* The discount a paid session gives its subscription (from its promotion code), or NULL. */
static json_t *session_discount(struct emu *app, const json_t *session, const json_t *priv,
                                const char *sub_id, int64_t now)
{
    json_t *promo = emu_state_get(app->st, EMU_PROMOTION_CODE, str_field(priv, "promotion_code"));
    json_t *coupon = emu_state_get(app->st, EMU_COUPON,
                                   promo ? str_field(json_object_get(promo, "coupon"), "id")
                                         : str_field(priv, "coupon"));
    struct emu_discount_params dp = { str_field(session, "customer"), sub_id,
                                      str_field(session, "id"), str_field(promo, "id"), now };
    json_t *copy, *discount;

    if (!coupon)
        return NULL;
    if (promo)
        json_object_set_new(promo, "times_redeemed",
                            json_integer(int_field(promo, "times_redeemed") + 1));
    json_object_set_new(coupon, "times_redeemed",
                        json_integer(int_field(coupon, "times_redeemed") + 1));
    if (promo)
        json_object_set_new(promo, "coupon", json_deep_copy(coupon));
    copy = json_deep_copy(coupon);
    discount = emu_discount_json(copy, &dp); /* takes a reference of its own */
    json_decref(copy);
    return discount;
}

/* The address the checkout page collected goes to the customer (customer_update[address]). */
static void session_address(json_t *cus, json_t *priv)
{
    json_t *addr = json_object_get(priv, "address");

    if (json_is_object(addr) && (json_is_null(json_object_get(cus, "address")) ||
                                 json_is_true(json_object_get(priv, "update_address"))))
        json_object_set(cus, "address", addr);
    if (str_field(priv, "name") && (json_is_null(json_object_get(cus, "name")) ||
                                    json_is_true(json_object_get(priv, "update_name"))))
        json_object_set(cus, "name", json_object_get(priv, "name"));
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
    json_t *discount = session_discount(app, session, priv, str_field(sub, "id"), sp.now);
    json_t *lines;
    json_t *inv;
    struct invoice_spec is;

    json_object_set_new(emu_state_private(app->st, cus_id), "card", json_string(card));
    session_address(cus, priv);
    if (discount)
        json_object_set_new(sub, "discount", discount);
    if (json_is_true(json_object_get(priv, "automatic_tax")))
        json_object_set_new(json_object_get(sub, "automatic_tax"), "enabled", json_true());
    emu_state_put(app->st, EMU_SUBSCRIPTION, sub);
    lines = json_pack("[o]", sub_line(app, sub, emu_subscription_price(sub),
                                      sp.trial_days ? 0 : sub_amount(sub),
                                      int_field(sub, "current_period_start"),
                                      int_field(sub, "current_period_end")));
    is = (struct invoice_spec){ sub,
                                cus,
                                "subscription_create",
                                lines,
                                int_field(sub, "current_period_start"),
                                int_field(sub, "current_period_end"),
                                sp.now };
    inv = invoice_issue(app, &is, true);
    json_decref(lines);
    session_complete(session, cus, sub, inv);
    emu_emit(app, "customer.subscription.created", sub, NULL, sp.now);
    emu_invoice_events(app, inv, sp.now);
    emu_emit(app, "checkout.session.completed", session, NULL, sp.now);
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

/* The schedule managing sub, when it is active; NULL otherwise. */
static json_t *sub_schedule(struct emu *app, const json_t *sub)
{
    json_t *sched = emu_state_get(app->st, EMU_SCHEDULE, str_field(sub, "schedule"));

    return sched && strcmp(str_field(sched, "status"), "active") == 0 ? sched : NULL;
}

/* The index of the schedule's phase holding `at` (the last one when past all), or -1. */
static int schedule_phase_at(const json_t *sched, int64_t at)
{
    const json_t *phases = json_object_get(sched, "phases");
    size_t i;
    const json_t *ph;
    int found = -1;

    json_array_foreach(phases, i, ph)
    {
        if (int_field(ph, "start_date") <= at)
            found = (int)i;
    }
    return found;
}

/* The end of the schedule's current phase, or 0 when it has none. */
static int64_t schedule_phase_end(const json_t *sched)
{
    return int_field(json_object_get(sched, "current_phase"), "end_date");
}

/* The price of a phase's first item (borrowed from the state), or NULL. */
static json_t *phase_price(struct emu *app, const json_t *phase)
{
    const json_t *item = json_array_get(json_object_get(phase, "items"), 0);

    return emu_state_get(app->st, EMU_PRICE, str_field(item, "price"));
}

/*
 * Moves a schedule past its current phase at `at`: the next phase's price without proration
 * (subscription_schedule.updated), or, past the last phase, the end (completed; the subscription
 * is released and goes on as it is). Old subscription values go into prev.
 */
static void schedule_step(struct emu *app, json_t *sub, int64_t at, json_t *prev)
{
    static const char *const keys[] = { "schedule", NULL };
    json_t *sched = sub_schedule(app, sub);
    const json_t *phases = json_object_get(sched, "phases");
    int idx;
    const json_t *next;

    if (!sched || schedule_phase_end(sched) > at)
        return;
    idx = schedule_phase_at(sched, at);
    next = idx >= 0 ? json_array_get(phases, (size_t)idx) : NULL;
    if (next && int_field(next, "end_date") > at) {
        json_t *price = phase_price(app, next);
        if (price)
            emu_subscription_switch(sub, price, prev);
        json_object_set_new(sched, "current_phase",
                            json_pack("{s:O,s:O}", "start_date",
                                      json_object_get(next, "start_date"), "end_date",
                                      json_object_get(next, "end_date")));
        emu_emit(app, "subscription_schedule.updated", sched, NULL, at);
        return;
    }
    prev_merge(prev, capture(sub, keys));
    json_object_set_new(sched, "status", json_string("completed"));
    json_object_set_new(sched, "completed_at", json_integer(at));
    json_object_set_new(sched, "current_phase", json_null());
    json_object_set(sched, "released_subscription", json_object_get(sub, "id"));
    json_object_set_new(sub, "schedule", json_null());
    emu_emit(app, "subscription_schedule.completed", sched, NULL, at);
}

/* Ends a discount whose time is up (customer.discount.deleted); the old one goes into prev. */
static void discount_expire(struct emu *app, json_t *sub, int64_t at, json_t *prev)
{
    static const char *const keys[] = { "discount", NULL };
    json_t *d = json_object_get(sub, "discount");

    if (!json_is_integer(json_object_get(d, "end")) || int_field(d, "end") > at)
        return;
    emu_emit(app, "customer.discount.deleted", d, NULL, at);
    prev_merge(prev, capture(sub, keys));
    json_object_set_new(sub, "discount", json_null());
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
    json_t *lines, *inv;
    struct invoice_spec is;
    enum emu_pay pay;

    schedule_step(app, sub, start, prev);
    discount_expire(app, sub, start, prev);
    emu_subscription_set_period(
        sub, start, emu_add_interval(start, emu_price_interval(emu_subscription_price(sub))));
    lines = json_deep_copy(pending_items(app, sub));
    json_array_append_new(lines, sub_line(app, sub, emu_subscription_price(sub), sub_amount(sub),
                                          start, int_field(sub, "current_period_end")));
    json_array_clear(pending_items(app, sub));
    is = (struct invoice_spec){ sub,   cus,   "subscription_cycle",
                                lines, start, int_field(sub, "current_period_end"),
                                at };
    inv = invoice_issue(app, &is, false);
    json_decref(lines);
    pay = emu_invoice_outcome(app, inv);
    json_object_set_new(sub, "status",
                        json_string(pay == EMU_PAY_OK ? "active"
                                    : failing         ? "unpaid"
                                                      : "past_due"));
    keep_changed(prev, sub);
    emu_emit(app, "customer.subscription.updated", sub, prev, at);
    emu_invoice_events(app, inv, at);
    json_decref(prev);
}

/* A schedule's phase ending inside a period: the next phase's price, without proration. */
static void sub_phase_change(struct emu *app, json_t *sub, int64_t at)
{
    json_t *prev = json_object();

    schedule_step(app, sub, at, prev);
    emu_subscription_updated(app, sub, prev);
}

/* A pending_update expires after 23 hours, or at the period end when that comes first. */
#define PENDING_UPDATE_S (23 * INT64_C(3600))

struct change_plan {
    json_t *lines;      /* the proration lines (and a new cycle's subscription line) */
    bool invoice_now;   /* always_invoice, or a new billing cycle */
    bool new_cycle;     /* billing_cycle_anchor now: the period restarts */
    int64_t start, end; /* the new period when new_cycle */
    int64_t at;         /* the proration date */
};

static bool str_is(const char *s, const char *want)
{
    return s && strcmp(s, want) == 0;
}

/* What a change does to the money, with nothing changed yet. */
static void change_plan(struct emu *app, const json_t *sub, const struct emu_sub_change *ch,
                        int64_t now, struct change_plan *pl)
{
    const json_t *old = emu_subscription_price(sub);
    const json_t *neu = ch->price ? ch->price : old;
    bool prorate = !str_is(ch->proration, "none") && !str_is(str_field(sub, "status"), "trialing");
    bool switched = !str_is(str_field(old, "id"), str_field(neu, "id"));

    pl->lines = json_array();
    pl->at = ch->proration_date ? ch->proration_date : now;
    pl->new_cycle = ch->anchor_now || strcmp(emu_price_interval(old), emu_price_interval(neu)) != 0;
    pl->invoice_now = pl->new_cycle || (str_is(ch->proration, "always_invoice") && switched);
    pl->start = now;
    pl->end = emu_add_interval(now, emu_price_interval(neu));
    if (pl->new_cycle) {
        if (prorate)
            json_array_append_new(pl->lines, proration_line(app, sub, old, true, pl->at));
        json_array_append_new(pl->lines, sub_line(app, sub, neu,
                                                  int_field(neu, "unit_amount") * sub_quantity(sub),
                                                  pl->start, pl->end));
        return;
    }
    if (!switched || !prorate)
        return;
    json_array_append_new(pl->lines, proration_line(app, sub, old, true, pl->at));
    json_array_append_new(pl->lines, proration_line(app, sub, neu, false, pl->at));
}

/* The invoice spec of a change's immediate invoice: pending items, then the plan's lines. */
static json_t *change_lines(struct emu *app, const json_t *sub, const struct change_plan *pl)
{
    json_t *lines = json_deep_copy(pending_items(app, sub));

    json_array_extend(lines, pl->lines);
    return lines;
}

json_t *emu_subscription_change(struct emu *app, json_t *sub, const struct emu_sub_change *ch,
                                json_t *prev)
{
    static const char *const cycle_keys[] = { "current_period_start", "current_period_end",
                                              "billing_cycle_anchor", NULL };
    static const char *const after_keys[] = { "latest_invoice", "status", "pending_update", NULL };
    json_t *cus = emu_state_get(app->st, EMU_CUSTOMER, str_field(sub, "customer"));
    int64_t now = sub_now(app, sub);
    struct change_plan pl;
    json_t *lines, *inv, *after;
    struct invoice_spec is;
    bool pending_only;
    int64_t expires = now + PENDING_UPDATE_S < int_field(sub, "current_period_end")
                          ? now + PENDING_UPDATE_S
                          : int_field(sub, "current_period_end");

    change_plan(app, sub, ch, now, &pl);
    if (!pl.invoice_now) {
        if (ch->price)
            emu_subscription_switch(sub, ch->price, prev);
        json_array_extend(pending_items(app, sub), pl.lines);
        json_decref(pl.lines);
        return NULL;
    }
    after = capture(sub, after_keys);
    pending_only = str_is(ch->payment_behavior, "pending_if_incomplete") &&
                   emu_customer_pay_outcome(app, str_field(sub, "customer")) != EMU_PAY_OK;
    lines = change_lines(app, sub, &pl);
    is = (struct invoice_spec){ sub,
                                cus,
                                "subscription_update",
                                lines,
                                pl.new_cycle ? pl.start : pl.at,
                                pl.new_cycle ? pl.end : int_field(sub, "current_period_end"),
                                now };
    if (!pending_only) {
        json_array_clear(pending_items(app, sub));
        if (ch->price)
            emu_subscription_switch(sub, ch->price, prev);
        if (pl.new_cycle) {
            prev_merge(prev, capture(sub, cycle_keys));
            emu_subscription_set_period(sub, pl.start, pl.end);
            json_object_set_new(sub, "billing_cycle_anchor", json_integer(pl.start));
        }
    }
    inv = invoice_issue(app, &is, false);
    if (pending_only)
        json_object_set_new(
            sub, "pending_update",
            json_pack("{s:o,s:I,s:[{s:O,s:O,s:I}],s:n,s:n}", "billing_cycle_anchor",
                      pl.new_cycle ? json_integer(pl.start) : json_null(), "expires_at",
                      (json_int_t)expires, "subscription_items", "id",
                      json_object_get(
                          json_array_get(json_object_get(json_object_get(sub, "items"), "data"), 0),
                          "id"),
                      "price", ch->price ? ch->price : emu_subscription_price(sub), "quantity",
                      (json_int_t)sub_quantity(sub), "trial_end", "trial_from_plan"));
    else if (emu_invoice_outcome(app, inv) != EMU_PAY_OK)
        json_object_set_new(sub, "status", json_string("past_due"));
    keep_changed(after, sub);
    prev_merge(prev, after);
    json_decref(lines);
    json_decref(pl.lines);
    return inv;
}

json_t *emu_subscription_preview(struct emu *app, json_t *sub, const struct emu_sub_change *ch)
{
    json_t *cus = emu_state_get(app->st, EMU_CUSTOMER, str_field(sub, "customer"));
    int64_t now = sub_now(app, sub), end = int_field(sub, "current_period_end");
    struct change_plan pl = { json_array(), false, false, now, end, now };
    const json_t *price = emu_subscription_price(sub);
    json_t *sched = sub_schedule(app, sub);
    json_t *lines, *inv;
    struct invoice_spec is;

    if (ch) {
        json_decref(pl.lines);
        change_plan(app, sub, ch, now, &pl);
        if (ch->price)
            price = ch->price;
    }
    lines = change_lines(app, sub, &pl);
    if (pl.invoice_now) {
        is = (struct invoice_spec){ sub,
                                    cus,
                                    "subscription_update",
                                    lines,
                                    pl.new_cycle ? pl.start : pl.at,
                                    pl.new_cycle ? pl.end : end,
                                    now };
    } else {
        int idx = sched ? schedule_phase_at(sched, end) : -1;
        json_t *next =
            idx >= 0
                ? phase_price(app, json_array_get(json_object_get(sched, "phases"), (size_t)idx))
                : NULL;
        int64_t next_end;
        if (next && !ch)
            price = next;
        next_end = emu_add_interval(end, emu_price_interval(price));
        json_array_append_new(lines, sub_line(app, sub, price,
                                              int_field(price, "unit_amount") * sub_quantity(sub),
                                              end, next_end));
        is = (struct invoice_spec){ sub, cus, "subscription_cycle", lines, end, next_end, end };
    }
    inv = invoice_make(app, &is, NULL);
    json_decref(lines);
    json_decref(pl.lines);
    json_object_del(inv, "id");
    json_object_set_new(inv, "status", json_string("draft"));
    json_object_set_new(inv, "number", json_null());
    json_object_set_new(inv, "hosted_invoice_url", json_null());
    json_object_set_new(inv, "invoice_pdf", json_null());
    json_object_set_new(inv, "effective_at", json_null());
    json_object_set_new(inv, "next_payment_attempt", json_integer(is.at));
    json_object_set_new(json_object_get(inv, "status_transitions"), "finalized_at", json_null());
    json_object_set_new(json_object_get(inv, "lines"), "url",
                        json_string("/v1/invoices/upcoming/lines"));
    return inv;
}

json_t *emu_schedule_create(struct emu *app, json_t *sub)
{
    static const char *const keys[] = { "schedule", NULL };
    int64_t now = sub_now(app, sub);
    json_t *sched = emu_schedule_json(sub, now);
    json_t *prev = capture(sub, keys);

    emu_state_put(app->st, EMU_SCHEDULE, sched);
    json_object_set(sub, "schedule", json_object_get(sched, "id"));
    emu_emit(app, "subscription_schedule.created", sched, NULL, now);
    emu_subscription_updated(app, sub, prev);
    return sched;
}

void emu_schedule_set_phases(struct emu *app, json_t *sched, json_t *phases,
                             const char *end_behavior)
{
    json_t *sub = emu_state_get(app->st, EMU_SUBSCRIPTION, str_field(sched, "subscription"));
    int64_t now = sub_now(app, sub);
    int idx;
    const json_t *cur;

    json_object_set_new(sched, "phases", phases);
    if (end_behavior)
        json_object_set_new(sched, "end_behavior", json_string(end_behavior));
    idx = schedule_phase_at(sched, now);
    cur = json_array_get(phases, idx >= 0 ? (size_t)idx : 0);
    json_object_set_new(sched, "current_phase",
                        json_pack("{s:O,s:O}", "start_date", json_object_get(cur, "start_date"),
                                  "end_date", json_object_get(cur, "end_date")));
    emu_emit(app, "subscription_schedule.updated", sched, NULL, now);
}

void emu_schedule_release(struct emu *app, json_t *sched)
{
    static const char *const keys[] = { "schedule", NULL };
    json_t *sub = emu_state_get(app->st, EMU_SUBSCRIPTION, str_field(sched, "subscription"));
    int64_t now = sub_now(app, sub);
    json_t *prev = capture(sub, keys);

    json_object_set_new(sched, "status", json_string("released"));
    json_object_set_new(sched, "released_at", json_integer(now));
    json_object_set(sched, "released_subscription", json_object_get(sched, "subscription"));
    json_object_set_new(sched, "subscription", json_null());
    json_object_set_new(sched, "current_phase", json_null());
    json_object_set_new(sub, "schedule", json_null());
    emu_emit(app, "subscription_schedule.released", sched, NULL, now);
    emu_subscription_updated(app, sub, prev);
}

/* The subscription whose latest invoice inv is, or NULL. */
static json_t *latest_of(struct emu *app, const json_t *inv)
{
    json_t *sub = emu_state_get(app->st, EMU_SUBSCRIPTION, str_field(inv, "subscription"));

    return str_is(str_field(sub, "latest_invoice"), str_field(inv, "id")) ? sub : NULL;
}

/* Applies sub's pending_update (its price, its new cycle); old values go into prev. */
static void pending_apply(struct emu *app, json_t *sub, json_t *prev)
{
    static const char *const keys[] = { "pending_update", NULL };
    static const char *const cycle_keys[] = { "current_period_start", "current_period_end",
                                              "billing_cycle_anchor", NULL };
    json_t *pu = json_incref(json_object_get(sub, "pending_update"));
    const json_t *item = json_array_get(json_object_get(pu, "subscription_items"), 0);
    const json_t *price = json_object_get(item, "price");
    const json_t *anchor = json_object_get(pu, "billing_cycle_anchor");

    prev_merge(prev, capture(sub, keys));
    json_object_set_new(sub, "pending_update", json_null());
    json_array_clear(pending_items(app, sub)); /* they were on the paid invoice */
    if (json_is_object(price))
        emu_subscription_switch(sub, price, prev);
    if (json_is_integer(anchor)) {
        int64_t start = (int64_t)json_integer_value(anchor);
        prev_merge(prev, capture(sub, cycle_keys));
        emu_subscription_set_period(
            sub, start, emu_add_interval(start, emu_price_interval(emu_subscription_price(sub))));
        json_object_set_new(sub, "billing_cycle_anchor", json_integer(start));
    }
    json_decref(pu);
}

/*
 * After sub's latest invoice is paid at `at`: its pending update applies and a failing
 * subscription is active again (customer.subscription.updated, then
 * customer.subscription.pending_update_applied when there was one).
 */
static void sub_latest_paid(struct emu *app, json_t *sub, int64_t at)
{
    static const char *const keys[] = { "status", NULL };
    json_t *prev = capture(sub, keys);
    bool pending = json_is_object(json_object_get(sub, "pending_update"));
    const char *status = str_field(sub, "status");

    if (pending)
        pending_apply(app, sub, prev);
    if (str_is(status, "past_due") || str_is(status, "unpaid") || str_is(status, "incomplete"))
        json_object_set_new(sub, "status", json_string("active"));
    keep_changed(prev, sub);
    if (json_object_size(prev) > 0)
        emu_emit(app, "customer.subscription.updated", sub, prev, at);
    if (pending)
        emu_emit(app, "customer.subscription.pending_update_applied", sub, NULL, at);
    json_decref(prev);
}

enum emu_pay emu_invoice_pay(struct emu *app, json_t *inv, const char *card)
{
    const char *cus_id = str_field(inv, "customer");
    json_t *cus_priv = emu_state_private(app->st, cus_id);
    json_t *inv_priv = emu_state_private(app->st, str_field(inv, "id"));
    int64_t at = emu_state_customer_now(app->st, cus_id);
    const char *saved = str_field(cus_priv, "card");
    char used[32];
    enum emu_pay pay;
    json_t *sub;

    snprintf(used, sizeof(used), "%s", card ? card : saved ? saved : "4242424242424242");
    if (card)
        pay = emu_card_parse(card) == EMU_CARD_DECLINE ? EMU_PAY_DECLINED : EMU_PAY_OK;
    else
        pay = card_outcome(app, cus_id);
    if (int_field(inv, "amount_due") == 0)
        pay = EMU_PAY_OK;
    json_object_del(inv_priv, "requires_action");
    emu_invoice_settle(inv, pay == EMU_PAY_OK, at);
    if (pay != EMU_PAY_OK) {
        if (pay == EMU_PAY_ACTION)
            json_object_set_new(inv_priv, "requires_action", json_true());
        emu_emit(app, pay == EMU_PAY_ACTION ? action_events[0] : failed_events[0], inv, NULL, at);
        return pay;
    }
    if (card)
        json_object_set_new(cus_priv, "card", json_string(card));
    if (int_field(inv, "amount_due") > 0)
        invoice_charge(app, inv, used, at);
    for (const char *const *ev = paid_events; *ev; ev++)
        emu_emit(app, *ev, inv, NULL, at);
    sub = latest_of(app, inv);
    if (sub)
        sub_latest_paid(app, sub, at);
    return EMU_PAY_OK;
}

/* Voids an open invoice at `at`: invoice.voided. */
static void invoice_void(struct emu *app, json_t *inv, int64_t at)
{
    json_object_set_new(inv, "status", json_string("void"));
    json_object_set_new(inv, "next_payment_attempt", json_null());
    json_object_set_new(json_object_get(inv, "status_transitions"), "voided_at", json_integer(at));
    json_object_del(emu_state_private(app->st, str_field(inv, "id")), "requires_action");
    emu_emit(app, "invoice.voided", inv, NULL, at);
}

/*
 * Discards sub's pending update at `at`, as Stripe does once expires_at passes: its open invoice
 * is voided (invoice.voided), then customer.subscription.updated and
 * customer.subscription.pending_update_expired.
 */
static void pending_expire(struct emu *app, json_t *sub, int64_t at)
{
    static const char *const keys[] = { "pending_update", NULL };
    json_t *inv = emu_state_get(app->st, EMU_INVOICE, str_field(sub, "latest_invoice"));
    json_t *prev = capture(sub, keys);

    if (inv && str_is(str_field(inv, "status"), "open"))
        invoice_void(app, inv, at);
    json_object_set_new(sub, "pending_update", json_null());
    emu_emit(app, "customer.subscription.updated", sub, prev, at);
    emu_emit(app, "customer.subscription.pending_update_expired", sub, NULL, at);
    json_decref(prev);
}

void emu_pending_expire_due(struct emu *app)
{
    size_t i;
    json_t *sub;

    json_array_foreach(emu_state_all(app->st, EMU_SUBSCRIPTION), i, sub)
    {
        const json_t *pu = json_object_get(sub, "pending_update");
        int64_t now = sub_now(app, sub);
        if (json_is_object(pu) && now >= int_field(pu, "expires_at"))
            pending_expire(app, sub, now);
    }
}

void emu_subscription_pause(struct emu *app, json_t *sub)
{
    static const char *const keys[] = { "status", NULL };
    int64_t now = sub_now(app, sub);
    json_t *prev = capture(sub, keys);

    json_object_set_new(sub, "status", json_string("paused"));
    emu_emit(app, "customer.subscription.updated", sub, prev, now);
    emu_emit(app, "customer.subscription.paused", sub, NULL, now);
    json_decref(prev);
}

#define RESUME_MAX_PERIODS 1200 /* a guard: a century of monthly periods */

/* billing_cycle_anchor unchanged: the period that holds `now`, from the paused one on. */
static void period_around(json_t *sub, int64_t now, int64_t *start, int64_t *end)
{
    const char *interval = emu_price_interval(emu_subscription_price(sub));

    *start = int_field(sub, "current_period_start");
    *end = int_field(sub, "current_period_end");
    for (int i = 0; *end <= now && i < RESUME_MAX_PERIODS; i++) {
        *start = *end;
        *end = emu_add_interval(*end, interval);
    }
}

json_t *emu_subscription_resume(struct emu *app, json_t *sub, const struct emu_resume *r)
{
    static const char *const keys[] = { "status",
                                        "current_period_start",
                                        "current_period_end",
                                        "billing_cycle_anchor",
                                        "latest_invoice",
                                        NULL };
    json_t *prev = capture(sub, keys);
    json_t *cus = emu_state_get(app->st, EMU_CUSTOMER, str_field(sub, "customer"));
    const json_t *price = emu_subscription_price(sub);
    int64_t now = sub_now(app, sub), start = now, end;
    json_t *lines = NULL, *inv = NULL;
    struct invoice_spec is;

    if (!r->anchor_unchanged) {
        end = emu_add_interval(now, emu_price_interval(price));
        emu_subscription_set_period(sub, now, end);
        json_object_set_new(sub, "billing_cycle_anchor", json_integer(now));
        lines = json_deep_copy(pending_items(app, sub));
        json_array_append_new(lines, sub_line(app, sub, price, sub_amount(sub), now, end));
    } else {
        period_around(sub, now, &start, &end);
        emu_subscription_set_period(sub, start, end);
        if (!str_is(r->proration, "none")) {
            json_t *line =
                proration_line(app, sub, price, false, r->proration_date ? r->proration_date : now);
            if (str_is(r->proration, "always_invoice")) {
                lines = json_deep_copy(pending_items(app, sub));
                json_array_append_new(lines, line);
            } else {
                json_array_append_new(pending_items(app, sub), line);
            }
        }
    }
    json_object_set_new(sub, "status", json_string("active"));
    if (lines) {
        json_array_clear(pending_items(app, sub));
        is = (struct invoice_spec){ sub, cus, "subscription_update", lines, start, end, now };
        inv = invoice_issue(app, &is, false);
        if (emu_invoice_outcome(app, inv) != EMU_PAY_OK)
            json_object_set_new(sub, "status", json_string("past_due"));
    }
    keep_changed(prev, sub);
    emu_emit(app, "customer.subscription.updated", sub, prev, now);
    emu_emit(app, "customer.subscription.resumed", sub, NULL, now);
    if (inv)
        emu_invoice_events(app, inv, now);
    json_decref(lines);
    json_decref(prev);
    return inv;
}

enum due_kind {
    DUE_NONE,
    DUE_TRIAL_WARNING,  /* customer.subscription.trial_will_end */
    DUE_TRIAL_END,      /* trialing -> active (or past_due) with its first charge */
    DUE_PERIOD_END,     /* renewal, or the scheduled cancellation */
    DUE_PHASE_END,      /* a schedule's phase ends inside a period */
    DUE_SESSION_EXPIRY, /* an open checkout session reaches its expires_at */
    DUE_PENDING_EXPIRY, /* a pending_update reaches its expires_at */
};

struct due {
    json_t *obj; /* the subscription, or the session of DUE_SESSION_EXPIRY */
    enum due_kind kind;
    int64_t at;
};

static struct due sub_cycle_due(struct emu *app, json_t *sub)
{
    const char *status = str_field(sub, "status");
    json_t *priv = emu_state_private(app->st, str_field(sub, "id"));
    int64_t end = int_field(sub, "current_period_end");
    json_t *sched = sub_schedule(app, sub);

    if (strcmp(status, "trialing") == 0) {
        int64_t warn = int_field(sub, "trial_end") - EMU_TRIAL_WARNING_S;
        if (!json_is_true(json_object_get(priv, "trial_warned")))
            return (struct due){ sub, DUE_TRIAL_WARNING, warn };
        return (struct due){ sub, DUE_TRIAL_END, end };
    }
    if (strcmp(status, "canceled") == 0 || strcmp(status, "incomplete_expired") == 0 ||
        strcmp(status, "paused") == 0)
        return (struct due){ sub, DUE_NONE, 0 };
    if (sched && schedule_phase_end(sched) < end)
        return (struct due){ sub, DUE_PHASE_END, schedule_phase_end(sched) };
    return (struct due){ sub, DUE_PERIOD_END, end };
}

/* What comes next for sub: its pending update's expiry, or the next step of its cycle. */
static struct due sub_next_due(struct emu *app, json_t *sub)
{
    struct due d = sub_cycle_due(app, sub);
    const json_t *pu = json_object_get(sub, "pending_update");

    if (json_is_object(pu) && (d.kind == DUE_NONE || int_field(pu, "expires_at") <= d.at))
        return (struct due){ sub, DUE_PENDING_EXPIRY, int_field(pu, "expires_at") };
    return d;
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
    case DUE_PHASE_END:
        sub_phase_change(app, d->obj, at);
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
    case DUE_PENDING_EXPIRY:
        pending_expire(app, d->obj, at);
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
