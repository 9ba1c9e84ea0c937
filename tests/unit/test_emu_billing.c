/*
 * test_emu_billing.c: the emulator's state changes (emulator/billing.c) without HTTP: the charge
 * and PaymentIntent of a paid checkout, refunds (the amount rule as a table, then partial, the
 * rest, too much), session expiry (by call, on the pinned real clock, on a test clock), a second
 * subscription for one customer, and the events each emits; proration and invoice totals
 * (discount and tax per line, the customer's balance) as tables of exact cents. Sessions are made
 * through their /v1 handler, so they are what the API makes.
 */
#include <pthread.h>

#include "api_handlers.h"
#include "base/clock.h"
#include "base/str.h"
#include "billing.h"
#include "emu.h"
#include "objects.h"
#include "t.h"

#define T0   INT64_C(1700000000)
#define CARD "4242424242424242"

static struct emu *app_new(void)
{
    struct emu_config cfg = { .host = "127.0.0.1",
                              .secret_key = "sk_test_unit",
                              .public_url = "http://emu.test",
                              .premium_price = "price_premium_monthly",
                              .plus_price = "price_plus_monthly" };

    return emu_new(&cfg);
}

static const char *str_of(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static int64_t int_of(const json_t *obj, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(obj, key));
}

/* A new customer (on test clock `clock` when not NULL); borrowed from the state. */
static json_t *customer(struct emu *app, const char *clock)
{
    json_t *params = json_pack("{s:s}", "email", "u@example.com");
    json_t *cus;

    if (clock)
        json_object_set_new(params, "test_clock", json_string(clock));
    pthread_mutex_lock(&app->mu);
    cus = emu_customer_create(app, params);
    pthread_mutex_unlock(&app->mu);
    json_decref(params);
    return cus;
}

/* A new open session for the customer through POST /v1/checkout/sessions; borrowed. */
static json_t *session(struct emu *app, const char *cus, const char *expires_at)
{
    struct emu_call c = { .app = app, .status = 200 };
    json_t *s = NULL;

    c.params =
        json_pack("{s:s,s:s,s:s,s:[{s:s}]}", "mode", "subscription", "customer", cus, "success_url",
                  "https://app.example/ok", "line_items", "price", "price_premium_monthly");
    if (expires_at)
        json_object_set_new(c.params, "expires_at", json_string(expires_at));
    pthread_mutex_lock(&app->mu);
    if (emu_session_create_h(&c) == ERR_OK)
        s = emu_state_get(app->st, EMU_SESSION, str_of(c.result, "id"));
    pthread_mutex_unlock(&app->mu);
    T_OK(s != NULL, "session created (%.200s)", c.err_message);
    json_decref(c.params);
    json_decref(c.result);
    return s;
}

static void pay(struct emu *app, json_t *s)
{
    pthread_mutex_lock(&app->mu);
    emu_checkout_pay(app, s, CARD);
    pthread_mutex_unlock(&app->mu);
}

static json_t *get(struct emu *app, enum emu_kind kind, const char *id)
{
    json_t *obj;

    pthread_mutex_lock(&app->mu);
    obj = emu_state_get(app->st, kind, id);
    pthread_mutex_unlock(&app->mu);
    return obj;
}

/* The types of the last n events, oldest first, joined with ','. */
static void last_events(struct emu *app, int n, char *out, size_t len)
{
    json_t *list = emu_webhooks_list_json(app->wh, n, NULL);
    json_t *data = json_object_get(list, "data");

    out[0] = '\0';
    for (size_t i = json_array_size(data); i-- > 0;) {
        const char *type = str_of(json_array_get(data, i), "type");
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s%s", used ? "," : "", type);
    }
    json_decref(list);
}

/* The newest event (a new reference). */
static json_t *last_event(struct emu *app)
{
    json_t *list = emu_webhooks_list_json(app->wh, 1, NULL);
    json_t *ev = json_incref(json_array_get(json_object_get(list, "data"), 0));

    json_decref(list);
    return ev;
}

static void test_refund_amount_rule(void)
{
    static const struct {
        int64_t amount, refunded;
        bool has_requested;
        int64_t requested;
        enum emu_refund_check want;
        int64_t want_out;
    } rows[] = {
        { 999, 0, false, 0, EMU_REFUND_OK, 999 },
        { 999, 0, true, 300, EMU_REFUND_OK, 300 },
        { 999, 0, true, 999, EMU_REFUND_OK, 999 },
        { 999, 300, false, 0, EMU_REFUND_OK, 699 },
        { 999, 300, true, 699, EMU_REFUND_OK, 699 },
        { 999, 300, true, 700, EMU_REFUND_TOO_LARGE, 699 },
        { 999, 0, true, 1000, EMU_REFUND_TOO_LARGE, 999 },
        { 999, 999, false, 0, EMU_REFUND_ALREADY_REFUNDED, 0 },
        { 999, 999, true, 1, EMU_REFUND_ALREADY_REFUNDED, 0 },
    };

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        int64_t out = -1;
        enum emu_refund_check got = emu_refund_amount(
            rows[i].amount, rows[i].refunded, rows[i].has_requested, rows[i].requested, &out);
        T_EQ_I64(got, rows[i].want, "refund rule row %zu: outcome", i);
        T_EQ_I64(out, rows[i].want_out, "refund rule row %zu: amount", i);
    }
}

/* Proration to the second, rounded half away from zero (Stripe's cents). */
static void test_prorate_rule(void)
{
    static const int64_t feb1 = T0 + 31 * EMU_DAY_S;

    static const struct {
        int64_t amount, start, end, at, want;
    } rows[] = {
        { 999, T0, feb1, T0 + 10 * EMU_DAY_S, 677 },     /* 999 * 21/31 = 676.74 */
        { 1999, T0, feb1, T0 + 10 * EMU_DAY_S, 1354 },   /* 1999 * 21/31 = 1354.16 */
        { 999, T0, feb1, T0, 999 },                      /* at the start: all of it */
        { 999, T0, feb1, T0 - 5, 999 },                  /* before: all of it */
        { 999, T0, feb1, feb1, 0 },                      /* at the end: nothing */
        { 999, T0, feb1, feb1 + 5, 0 },                  /* after: nothing */
        { 1, 0, 2, 1, 1 },                               /* a half rounds up */
        { -3, 0, 2, 1, -2 },                             /* and away from zero below it */
        { 999, T0, feb1, T0 + 31 * EMU_DAY_S / 2, 500 }, /* 499.5 */
        { 9990, T0, T0 + 365 * EMU_DAY_S, T0 + 100 * EMU_DAY_S, 7253 }, /* 7252.60 */
    };

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
        T_EQ_I64(emu_prorate(rows[i].amount, rows[i].start, rows[i].end, rows[i].at), rows[i].want,
                 "prorate row %zu", i);
    T_EQ_I64(emu_round_div(5, 2), 3, "5/2 rounds to 3");
    T_EQ_I64(emu_round_div(-5, 2), -3, "-5/2 rounds to -3");
    T_EQ_I64(emu_round_div(4, 3), 1, "4/3 rounds to 1");
    T_EQ_I64(emu_round_div(-4, 3), -1, "-4/3 rounds to -1");
    T_EQ_I64(emu_round_div(7, -2), -4, "7/-2 rounds to -4");
}

/* A customer with one paid checkout: its session, subscription, invoice and charge. */
struct paid {
    json_t *cus, *session, *sub, *invoice, *charge, *pi;
};

static struct paid paid_checkout(struct emu *app, json_t *cus)
{
    struct paid p = { .cus = cus };

    p.session = session(app, str_of(cus, "id"), NULL);
    pay(app, p.session);
    p.sub = get(app, EMU_SUBSCRIPTION, str_of(p.session, "subscription"));
    p.invoice = get(app, EMU_INVOICE, str_of(p.session, "invoice"));
    p.charge = get(app, EMU_CHARGE, str_of(p.invoice, "charge"));
    p.pi = get(app, EMU_PAYMENT_INTENT, str_of(p.invoice, "payment_intent"));
    return p;
}

static void test_checkout_charge(struct emu *app)
{
    struct paid p = paid_checkout(app, customer(app, NULL));

    T_OK(p.charge && p.pi, "the paid invoice names a stored charge and PaymentIntent");
    if (!p.charge || !p.pi)
        return;
    T_EQ_I64(int_of(p.charge, "amount"), int_of(p.invoice, "amount_paid"), "charge amount");
    T_EQ_I64(int_of(p.charge, "amount"), 999, "the premium price");
    T_EQ_I64(int_of(p.charge, "amount_refunded"), 0, "nothing refunded yet");
    T_EQ_STR(str_of(p.charge, "customer"), str_of(p.cus, "id"), "charge customer");
    T_EQ_STR(str_of(p.charge, "invoice"), str_of(p.invoice, "id"), "charge invoice");
    T_EQ_STR(str_of(p.charge, "payment_intent"), str_of(p.pi, "id"), "charge payment_intent");
    T_EQ_STR(str_of(p.pi, "latest_charge"), str_of(p.charge, "id"), "intent latest_charge");
    T_EQ_STR(str_of(p.pi, "status"), "succeeded", "intent status");
}

static enum emu_refund_check refund(struct emu *app, json_t *charge, bool has, int64_t requested,
                                    json_t **out)
{
    int64_t amount = 0;
    enum emu_refund_check r = emu_refund_amount(
        int_of(charge, "amount"), int_of(charge, "amount_refunded"), has, requested, &amount);

    *out = NULL;
    if (r != EMU_REFUND_OK)
        return r;
    pthread_mutex_lock(&app->mu);
    *out = emu_charge_refund(app, charge, amount, "duplicate", NULL);
    pthread_mutex_unlock(&app->mu);
    return r;
}

static void test_refunds(struct emu *app)
{
    struct paid p = paid_checkout(app, customer(app, NULL));
    char types[256];
    json_t *re, *ev;

    if (!p.charge)
        return;
    T_EQ_I64(refund(app, p.charge, true, 300, &re), EMU_REFUND_OK, "a partial refund");
    T_EQ_I64(int_of(re, "amount"), 300, "refund amount");
    T_EQ_STR(str_of(re, "charge"), str_of(p.charge, "id"), "refund charge");
    T_EQ_STR(str_of(re, "payment_intent"), str_of(p.pi, "id"), "refund payment_intent");
    T_EQ_STR(str_of(re, "status"), "succeeded", "refund status");
    T_EQ_STR(str_of(re, "reason"), "duplicate", "refund reason");
    T_EQ_I64(int_of(p.charge, "amount_refunded"), 300, "charge amount_refunded");
    T_OK(json_is_false(json_object_get(p.charge, "refunded")), "not refunded in full");
    last_events(app, 2, types, sizeof(types));
    T_EQ_STR(types, "refund.created,charge.refunded", "the refund's events");
    T_EQ_I64(refund(app, p.charge, true, 700, &re), EMU_REFUND_TOO_LARGE, "more than is left");
    T_EQ_I64(refund(app, p.charge, false, 0, &re), EMU_REFUND_OK, "the rest");
    T_EQ_I64(int_of(re, "amount"), 699, "the rest is 699");
    T_OK(json_is_true(json_object_get(p.charge, "refunded")), "refunded in full");
    ev = last_event(app);
    T_EQ_I64(int_of(json_object_get(json_object_get(ev, "data"), "previous_attributes"),
                    "amount_refunded"),
             300, "charge.refunded: previous amount_refunded");
    json_decref(ev);
    T_EQ_I64(refund(app, p.charge, false, 0, &re), EMU_REFUND_ALREADY_REFUNDED, "then nothing");
}

static void test_expire(struct emu *app)
{
    json_t *s = session(app, str_of(customer(app, NULL), "id"), NULL);
    json_t *ev;

    if (!s)
        return;
    pthread_mutex_lock(&app->mu);
    emu_checkout_expire(app, s, T0);
    pthread_mutex_unlock(&app->mu);
    T_EQ_STR(str_of(s, "status"), "expired", "expired");
    T_OK(json_is_null(json_object_get(s, "url")), "its url is null");
    ev = last_event(app);
    T_EQ_STR(str_of(ev, "type"), "checkout.session.expired", "the expiry event");
    T_EQ_STR(str_of(json_object_get(json_object_get(ev, "data"), "object"), "id"), str_of(s, "id"),
             "about the session");
    json_decref(ev);
}

static void test_expire_on_real_clock(struct emu *app)
{
    json_t *s;

    clock_set_fake(T0);
    s = session(app, str_of(customer(app, NULL), "id"), NULL);
    if (s) {
        T_EQ_I64(int_of(s, "expires_at"), T0 + EMU_DAY_S, "24 hours by default");
        clock_set_fake(T0 + EMU_DAY_S - 1);
        pthread_mutex_lock(&app->mu);
        emu_checkout_expire_due(app);
        pthread_mutex_unlock(&app->mu);
        T_EQ_STR(str_of(s, "status"), "open", "open until expires_at");
        clock_set_fake(T0 + EMU_DAY_S);
        pthread_mutex_lock(&app->mu);
        emu_checkout_expire_due(app);
        pthread_mutex_unlock(&app->mu);
        T_EQ_STR(str_of(s, "status"), "expired", "expired at expires_at");
    }
    clock_set_fake(-1);
}

static void test_expire_on_test_clock(struct emu *app)
{
    json_t *clk = emu_clock_json(T0, "c", T0);
    char at[32];
    json_t *s, *events, *expired;

    pthread_mutex_lock(&app->mu);
    emu_state_put(app->st, EMU_CLOCK, clk);
    pthread_mutex_unlock(&app->mu);
    snprintf(at, sizeof(at), "%lld", (long long)(T0 + 3600));
    s = session(app, str_of(customer(app, str_of(clk, "id")), "id"), at);
    if (!s)
        return;
    pthread_mutex_lock(&app->mu);
    emu_clock_advance(app, clk, T0 + 1800);
    pthread_mutex_unlock(&app->mu);
    T_EQ_STR(str_of(s, "status"), "open", "open before expires_at on the clock");
    pthread_mutex_lock(&app->mu);
    emu_clock_advance(app, clk, T0 + 7200);
    pthread_mutex_unlock(&app->mu);
    T_EQ_STR(str_of(s, "status"), "expired", "expired once the clock passed it");
    events = emu_webhooks_list_json(app->wh, 2, NULL);
    expired = json_array_get(json_object_get(events, "data"), 1);
    T_EQ_STR(str_of(expired, "type"), "checkout.session.expired", "then the clock is ready");
    T_EQ_I64(int_of(expired, "created"), T0 + 3600, "the event is at expires_at");
    json_decref(events);
}

static void test_second_subscription(struct emu *app)
{
    json_t *cus = customer(app, NULL);
    struct paid first = paid_checkout(app, cus);
    struct paid second = paid_checkout(app, cus);

    if (!first.sub || !second.sub || !first.charge || !second.charge)
        return;
    T_OK(strcmp(str_of(first.sub, "id"), str_of(second.sub, "id")) != 0, "two subscriptions");
    T_EQ_STR(str_of(second.sub, "customer"), str_of(cus, "id"), "for the same customer");
    T_EQ_STR(str_of(first.sub, "status"), "active", "the first is active");
    T_EQ_STR(str_of(second.sub, "status"), "active", "the second is active too");
    T_OK(strcmp(str_of(first.charge, "id"), str_of(second.charge, "id")) != 0,
         "each paid with a charge of its own");
    pthread_mutex_lock(&app->mu);
    emu_subscription_cancel_now(app, second.sub);
    pthread_mutex_unlock(&app->mu);
    T_EQ_STR(str_of(second.sub, "status"), "canceled", "the second canceled");
    T_EQ_STR(str_of(first.sub, "status"), "active", "the first still active");
}

/* Discount and tax per line, then the totals and the customer's balance. */
static void test_invoice_totals(struct emu *app)
{
    struct paid p = paid_checkout(app, customer(app, NULL));
    const json_t *price = emu_subscription_price(p.sub);
    struct emu_line_params credit = { p.sub, price,  1,    -677,         "Unused time",
                                      T0,    T0 + 1, true, "invoiceitem" };
    struct emu_line_params charge = { p.sub, price,  1,    1354,         "Remaining time",
                                      T0,    T0 + 1, true, "invoiceitem" };
    json_t *lines = json_pack("[o,o]", emu_line_json(&credit), emu_line_json(&charge));
    struct emu_invoice_params ip = { p.sub,  p.cus, "subscription_update", 0,    T0,
                                     T0 + 1, T0,    "http://emu.test",     lines };
    json_t *coupon = json_pack("{s:s,s:s,s:i,s:s}", "id", "co_x", "object", "coupon", "percent_off",
                               20, "duration", "forever");
    struct emu_discount_params dp = { str_of(p.cus, "id"), str_of(p.sub, "id"), NULL, NULL, T0 };
    json_t *discount = emu_discount_json(coupon, &dp);
    struct emu_invoice_terms terms = { discount, 2000, true, -1000 };
    json_t *inv = emu_invoice_json(&ip);
    int64_t after = emu_invoice_total(inv, &terms);
    json_t *l0 = json_array_get(json_object_get(json_object_get(inv, "lines"), "data"), 0);

    /* discounts: round(-135.4) = -135, round(270.8) = 271; tax: round(-54.2), round(108.3) */
    T_EQ_I64(int_of(inv, "subtotal"), 677, "subtotal: the lines");
    T_EQ_I64(int_of(json_array_get(json_object_get(inv, "total_discount_amounts"), 0), "amount"),
             136, "discount: per line, summed");
    T_EQ_I64(int_of(inv, "tax"), 54, "tax: 10%% of each discounted line");
    T_EQ_I64(int_of(inv, "total"), 677 - 136 + 54, "total");
    T_EQ_I64(int_of(inv, "amount_due"), 0, "the credit balance covers it");
    T_EQ_I64(after, 595 - 1000, "what is left of the credit");
    T_EQ_I64(int_of(inv, "ending_balance"), -405, "ending_balance");
    T_EQ_I64(int_of(json_array_get(json_object_get(l0, "discount_amounts"), 0), "amount"), -135,
             "a credit line's discount is negative");
    T_OK(json_is_null(json_object_get(discount, "end")), "a forever coupon does not end");
    json_decref(inv);
    json_decref(lines);
    json_decref(discount);
    json_decref(coupon); /* emu_discount_json took a reference of its own */
}

int main(void)
{
    struct emu *app = app_new();

    test_refund_amount_rule();
    test_prorate_rule();
    test_invoice_totals(app);
    test_checkout_charge(app);
    test_refunds(app);
    test_expire(app);
    test_expire_on_real_clock(app);
    test_expire_on_test_clock(app);
    test_second_subscription(app);
    emu_free(app);
    return t_done();
}
