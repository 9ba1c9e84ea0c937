/* test_stripe_glue.c: the glue between Stripe's answers and the store (api/stripe_glue.h). */
#include <stdlib.h>
#include <string.h>

#include "api/stripe_glue.h"
#include "base/str.h"
#include "billing/status.h"
#include "billing/tiers.h"
#include "store/store.h"
#include "t.h"

static void test_trial(void)
{
    static const struct {
        int64_t requested;
        int64_t granted;
        bool had_trial;
        bool has_reason;
    } rows[] = {
        { 0, 0, false, false }, { 0, 0, true, false }, { 14, 14, false, false },
        { 14, 0, true, true },  { 1, 0, true, true },  { 730, 730, false, false },
    };

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct glue_trial t = glue_trial_decide(rows[i].requested, rows[i].had_trial);
        T_EQ_I64(t.requested, rows[i].requested, "trial row %zu: requested", i);
        T_EQ_I64(t.granted, rows[i].granted, "trial row %zu: granted", i);
        T_OK((t.reason != NULL) == rows[i].has_reason, "trial row %zu: reason given", i);
    }
}

static void test_session_owner(void)
{
    static const struct {
        const char *ref, *meta, *user;
        bool mine;
    } rows[] = {
        { "u1", "", "u1", true },  { "", "u1", "u1", true },   { "u1", "u1", "u1", true },
        { "u2", "", "u1", false }, { "", "u2", "u1", false },  { "", "", "u1", false },
        { "", "", "", false },     { "u1", "", "u10", false },
    };

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct stripe_checkout_session cs = { 0 };
        (void)str_copy(cs.client_reference_id, sizeof(cs.client_reference_id), rows[i].ref);
        (void)str_copy(cs.user_id, sizeof(cs.user_id), rows[i].meta);
        T_OK(glue_session_belongs_to(&cs, rows[i].user) == rows[i].mine, "owner row %zu", i);
    }
}

static struct subscription sub_of(const char *id, const char *price, enum sub_status status)
{
    struct subscription s = { 0 };

    (void)str_copy(s.id, sizeof(s.id), id);
    (void)str_copy(s.price_id, sizeof(s.price_id), price);
    s.status = status;
    (void)str_copy(s.user_id, sizeof(s.user_id), "meta_user");
    (void)str_copy(s.stripe_customer_id, sizeof(s.stripe_customer_id), "cus_1");
    s.current_period_start = 1000;
    s.current_period_end = 2000;
    return s;
}

static void catalog(struct tier_catalog *cat)
{
    tier_catalog_builtin(cat);
    T_OK(tier_catalog_set_price_id(cat, "premium", NULL, "price_p") == ERR_OK, "premium price set");
    T_OK(tier_catalog_set_price_id(cat, "plus", NULL, "price_x") == ERR_OK, "plus price set");
}

static void test_complete(void)
{
    static const struct {
        const char *price;
        enum sub_status status;
        const char *user;
        enum sub_status stored_status; /* SUB_STATUS_MISSING: nothing stored */
        int64_t stored_since;
        const char *tier, *user_want;
        int64_t since;
    } rows[] = {
        { "price_p", SUB_STATUS_ACTIVE, "u1", SUB_STATUS_MISSING, 0, "premium", "u1", 0 },
        { "price_x", SUB_STATUS_TRIALING, NULL, SUB_STATUS_MISSING, 0, "plus", "meta_user", 0 },
        { "price_unknown", SUB_STATUS_ACTIVE, "", SUB_STATUS_MISSING, 0, "", "meta_user", 0 },
        { "price_p", SUB_STATUS_PAST_DUE, "u1", SUB_STATUS_MISSING, 0, "premium", "u1", 500 },
        { "price_p", SUB_STATUS_PAST_DUE, "u1", SUB_STATUS_PAST_DUE, 300, "premium", "u1", 300 },
        { "price_p", SUB_STATUS_PAST_DUE, "u1", SUB_STATUS_ACTIVE, 0, "premium", "u1", 500 },
        { "price_p", SUB_STATUS_PAST_DUE, "u1", SUB_STATUS_PAST_DUE, 0, "premium", "u1", 500 },
        { "price_p", SUB_STATUS_ACTIVE, "u1", SUB_STATUS_PAST_DUE, 300, "premium", "u1", 0 },
    };
    struct tier_catalog cat;

    catalog(&cat);
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct subscription s = sub_of("sub_1", rows[i].price, rows[i].status);
        struct subscription stored = sub_of("sub_1", "price_p", rows[i].stored_status);
        bool has_stored = rows[i].stored_status != SUB_STATUS_MISSING;
        stored.past_due_since = rows[i].stored_since;
        glue_subscription_complete(&cat, rows[i].user, 500, has_stored ? &stored : NULL, &s);
        T_EQ_STR(s.tier, rows[i].tier, "complete row %zu: tier", i);
        T_EQ_STR(s.user_id, rows[i].user_want, "complete row %zu: user", i);
        T_EQ_I64(s.past_due_since, rows[i].since, "complete row %zu: past_due_since", i);
        T_EQ_I64(s.stripe_updated, 500, "complete row %zu: stripe_updated", i);
    }
}

static void test_differs(void)
{
    struct subscription a = sub_of("sub_1", "price_p", SUB_STATUS_ACTIVE), b = a;

    T_OK(!glue_subscription_differs(&a, &b), "equal states do not differ");
    b.stripe_updated = 99;
    b.past_due_since = 98;
    T_OK(!glue_subscription_differs(&a, &b), "local stamps are not Stripe's fields");
    b = a;
    b.cancel_at_period_end = true;
    T_OK(glue_subscription_differs(&a, &b), "cancel_at_period_end differs");
    b = a;
    b.status = SUB_STATUS_CANCELED;
    T_OK(glue_subscription_differs(&a, &b), "status differs");
    b = a;
    b.current_period_end++;
    T_OK(glue_subscription_differs(&a, &b), "period end differs");
    b = a;
    b.trial_end = 5;
    T_OK(glue_subscription_differs(&a, &b), "trial end differs");
}

/* Applying through the store: changed only when the stored view was missing or different. */
static void test_store(void)
{
    struct tier_catalog cat;
    struct store *st = NULL;
    struct subscription s, got;
    char errbuf[256];
    int applied = 0;
    bool changed = false;

    catalog(&cat);
    if (store_open("sqlite::memory:", 1, &st, errbuf, sizeof(errbuf)) != ERR_OK ||
        store_migrate(st, &applied, errbuf, sizeof(errbuf)) != ERR_OK) {
        T_OK(false, "open the store: %s", errbuf);
        store_close(st);
        return;
    }
    s = sub_of("sub_9", "price_p", SUB_STATUS_ACTIVE);
    T_OK(glue_subscription_store(st, &cat, "u9", 100, &s, &changed) == ERR_OK, "first apply");
    T_OK(changed, "a new subscription is a change");
    T_OK(store_subscription_get(st, "sub_9", &got) == ERR_OK, "stored");
    T_EQ_STR(got.tier, "premium", "stored tier");
    T_EQ_STR(got.user_id, "u9", "stored user");
    s = sub_of("sub_9", "price_p", SUB_STATUS_ACTIVE);
    T_OK(glue_subscription_store(st, &cat, "u9", 200, &s, &changed) == ERR_OK, "same again");
    T_OK(!changed, "the same state later is no change");
    s = sub_of("sub_9", "price_p", SUB_STATUS_ACTIVE);
    s.cancel_at_period_end = true;
    T_OK(glue_subscription_store(st, &cat, "u9", 300, &s, &changed) == ERR_OK, "cancel");
    T_OK(changed, "cancel_at_period_end is a change");
    T_OK(store_subscription_get(st, "sub_9", &got) == ERR_OK && got.cancel_at_period_end,
         "cancel stored");
    s = sub_of("sub_9", "price_unknown", SUB_STATUS_ACTIVE);
    T_OK(glue_subscription_store(st, &cat, "u9", 400, &s, &changed) == ERR_UPSTREAM,
         "a price no tier names is refused");
    T_OK(!changed, "refused: no change");
    T_OK(store_subscription_get(st, "sub_9", &got) == ERR_OK && !strcmp(got.tier, "premium"),
         "the stored tier stays");
    store_close(st);
}

static void test_would_change(void)
{
    struct subscription stored = sub_of("sub_1", "price_p", SUB_STATUS_ACTIVE), s = stored;

    stored.stripe_updated = 100;
    s.stripe_updated = 200;
    T_OK(glue_subscription_would_change(NULL, &s), "nothing stored: a change");
    T_OK(!glue_subscription_would_change(&stored, &s), "the same state later: no change");
    s.cancel_at_period_end = true;
    T_OK(glue_subscription_would_change(&stored, &s), "newer and different: a change");
    s.stripe_updated = 50;
    T_OK(!glue_subscription_would_change(&stored, &s), "older: no change, however different");
    s.stripe_updated = 200;
    s.current_period_start = stored.current_period_start - 1;
    T_OK(!glue_subscription_would_change(&stored, &s), "an earlier period: no change");
    stored.status = SUB_STATUS_CANCELED;
    s = sub_of("sub_1", "price_p", SUB_STATUS_ACTIVE);
    s.stripe_updated = 300;
    T_OK(!glue_subscription_would_change(&stored, &s), "a canceled subscription stays canceled");
}

static bool open_store(struct store **st)
{
    char errbuf[256];
    int applied = 0;

    *st = NULL;
    if (store_open("sqlite::memory:", 1, st, errbuf, sizeof(errbuf)) == ERR_OK &&
        store_migrate(*st, &applied, errbuf, sizeof(errbuf)) == ERR_OK)
        return true;
    T_OK(false, "open the store: %s", errbuf);
    store_close(*st);
    return false;
}

/*
 * A dry run decides as the write does: for each state in turn, check first (nothing is written),
 * then store; both must say the same, and the check must leave the stored state as it was.
 */
static void test_check_agrees(void)
{
    static const struct {
        const char *what;
        const char *price;
        enum sub_status status;
        int64_t at; /* Stripe's time */
        bool cancel;
        const char *user;
        enum err want;
        bool changed;
    } steps[] = {
        { "new", "price_p", SUB_STATUS_ACTIVE, 100, false, "u9", ERR_OK, true },
        { "same later", "price_p", SUB_STATUS_ACTIVE, 200, false, "u9", ERR_OK, false },
        { "cancel", "price_p", SUB_STATUS_ACTIVE, 300, true, "u9", ERR_OK, true },
        { "older resume", "price_p", SUB_STATUS_ACTIVE, 250, false, "u9", ERR_OK, false },
        { "plus", "price_x", SUB_STATUS_ACTIVE, 400, true, "u9", ERR_OK, true },
        { "unknown price", "price_unknown", SUB_STATUS_ACTIVE, 500, true, "u9", ERR_UPSTREAM,
          false },
        { "another user", "price_p", SUB_STATUS_ACTIVE, 600, true, "u8", ERR_CONFLICT, false },
        { "canceled", "price_x", SUB_STATUS_CANCELED, 700, false, "u9", ERR_OK, true },
    };
    struct tier_catalog cat;
    struct store *st;

    catalog(&cat);
    if (!open_store(&st))
        return;
    for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
        struct subscription s = sub_of("sub_9", steps[i].price, steps[i].status), before, after;
        bool had = store_subscription_get(st, "sub_9", &before) == ERR_OK,
             checked = !steps[i].changed, stored = !steps[i].changed;
        s.cancel_at_period_end = steps[i].cancel;
        T_EQ_I64(glue_subscription_check(st, &cat, steps[i].user, steps[i].at, &s, &checked),
                 steps[i].want, "%s: check", steps[i].what);
        T_OK(checked == steps[i].changed, "%s: check says changed=%d", steps[i].what,
             steps[i].changed);
        T_OK(store_subscription_get(st, "sub_9", &after) == (had ? ERR_OK : ERR_NOT_FOUND) &&
                 (!had || !glue_subscription_differs(&before, &after)),
             "%s: the check wrote nothing", steps[i].what);
        s = sub_of("sub_9", steps[i].price, steps[i].status);
        s.cancel_at_period_end = steps[i].cancel;
        T_EQ_I64(glue_subscription_store(st, &cat, steps[i].user, steps[i].at, &s, &stored),
                 steps[i].want, "%s: store", steps[i].what);
        T_OK(stored == checked, "%s: the store agrees (changed=%d)", steps[i].what, stored);
    }
    store_close(st);
}

static struct invoice invoice_of(const char *status, int64_t paid)
{
    struct invoice inv = { 0 };

    (void)str_copy(inv.id, sizeof(inv.id), "in_1");
    (void)str_copy(inv.user_id, sizeof(inv.user_id), "u1");
    (void)str_copy(inv.status, sizeof(inv.status), status);
    (void)str_copy(inv.currency, sizeof(inv.currency), "usd");
    inv.amount_due = 1500;
    inv.amount_paid = paid;
    inv.created = 100;
    return inv;
}

/* Invoices: the same agreement, over the forward-only rule. */
static void test_invoice_check_agrees(void)
{
    static const struct {
        const char *what;
        const char *status;
        int64_t paid;
        bool changed;
    } steps[] = {
        { "new draft", "draft", 0, true },   { "same draft", "draft", 0, false },
        { "open", "open", 0, true },         { "paid", "paid", 1500, true },
        { "a late open", "open", 0, false }, { "paid again", "paid", 1500, false },
        { "void", "void", 1500, true },      { "a late paid", "paid", 1500, true },
    };
    struct invoice a = invoice_of("paid", 1500), b = a;
    struct store *st;

    T_OK(!glue_invoice_differs(&a, &b), "equal invoices do not differ");
    b.hosted_invoice_url[0] = 'x';
    T_OK(glue_invoice_differs(&a, &b), "the url differs");
    T_OK(glue_invoice_would_change(NULL, &a), "nothing stored: a change");
    if (!open_store(&st))
        return;
    for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
        struct invoice inv = invoice_of(steps[i].status, steps[i].paid), got;
        bool checked = !steps[i].changed, stored = !steps[i].changed;
        bool had = store_invoice_get(st, "in_1", &a) == ERR_OK;
        T_EQ_I64(glue_invoice_check(st, &inv, &checked), ERR_OK, "%s: check", steps[i].what);
        T_OK(checked == steps[i].changed, "%s: check says changed=%d", steps[i].what,
             steps[i].changed);
        T_OK(store_invoice_get(st, "in_1", &got) == (had ? ERR_OK : ERR_NOT_FOUND) &&
                 (!had || !glue_invoice_differs(&a, &got)),
             "%s: the check wrote nothing", steps[i].what);
        T_EQ_I64(glue_invoice_store(st, &inv, &stored), ERR_OK, "%s: store", steps[i].what);
        T_OK(stored == checked, "%s: the store agrees (changed=%d)", steps[i].what, stored);
    }
    store_close(st);
}

static void test_fail(void)
{
    static const struct {
        enum err in;
        int http_status;
        const char *type;
        enum err want;
        const char *code;
        const char *says;
    } rows[] = {
        { ERR_UNAVAILABLE, 0, "", ERR_UNAVAILABLE, "stripe_unavailable", "did not answer" },
        { ERR_UPSTREAM, 500, "api_error", ERR_UPSTREAM, "stripe_error", "HTTP 500 after 3" },
        /* a refusal the caller did not handle: the 502 a Stripe 400 always was */
        { ERR_REFUSED, 400, "invalid_request_error", ERR_UPSTREAM, "stripe_error",
          "HTTP 400 after 3" },
        { ERR_RATE_LIMITED, 429, "rate_limit_error", ERR_UNAVAILABLE, "stripe_unavailable",
          "HTTP 429" },
        { ERR_UNAVAILABLE, 401, "invalid_request_error", ERR_UNAVAILABLE, "stripe_unavailable",
          "HTTP 401" },
        { ERR_NOT_FOUND, 404, "invalid_request_error", ERR_NOT_FOUND, "resource_missing",
          "no such object" },
        { ERR_QUOTA, 402, "card_error", ERR_QUOTA, "card_declined", "boom" },
        { ERR_INVALID, 0, "", ERR_INVALID, "parameter_invalid", "boom" },
    };

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct request req = { 0 };
        struct stripe_error se = { .http_status = rows[i].http_status, .attempts = 3 };
        (void)str_copy(se.type, sizeof(se.type), rows[i].type);
        (void)str_copy(se.message, sizeof(se.message), "boom");
        enum err got = glue_fail_stripe(&req, rows[i].in, &se, "do the thing", "session_id");
        T_EQ_I64(got, rows[i].want, "fail row %zu: err", i);
        T_EQ_I64(req.error.err, rows[i].want, "fail row %zu: recorded", i);
        T_EQ_STR(req.error.code, rows[i].code, "fail row %zu: code", i);
        T_OK(strstr(req.error.message, rows[i].says) != NULL, "fail row %zu: '%.200s' says '%s'", i,
             req.error.message, rows[i].says);
        T_OK(strstr(req.error.message, "do the thing") != NULL, "fail row %zu: says what", i);
    }
}

/* Stripe's resource_missing about an id stored here (param NULL) is a 409 no retry can fix. */
static void test_fail_stored_missing(void)
{
    static const struct {
        enum err in;
        int http_status;
        const char *param;
        enum err want;
        const char *code;
    } rows[] = {
        { ERR_REFUSED, 400, NULL, ERR_CONFLICT, "stripe_object_missing" },
        { ERR_NOT_FOUND, 404, NULL, ERR_CONFLICT, "stripe_object_missing" },
        { ERR_NOT_FOUND, 404, "session_id", ERR_NOT_FOUND, "resource_missing" },
    };

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct request req = { 0 };
        struct stripe_error se = { .http_status = rows[i].http_status, .attempts = 1 };
        (void)str_copy(se.type, sizeof(se.type), "invalid_request_error");
        (void)str_copy(se.code, sizeof(se.code), "resource_missing");
        (void)str_copy(se.message, sizeof(se.message), "No such customer: 'cus_gone'");
        enum err got = glue_fail_stripe(&req, rows[i].in, &se, "do the thing", rows[i].param);
        T_EQ_I64(got, rows[i].want, "missing row %zu: err", i);
        T_EQ_STR(req.error.code, rows[i].code, "missing row %zu: code", i);
        if (rows[i].want == ERR_CONFLICT)
            T_OK(strstr(req.error.message, "No such customer: 'cus_gone'") &&
                     !strstr(req.error.message, "try again later"),
                 "missing row %zu: names the object, no retry: %.300s", i, req.error.message);
    }
}

int main(void)
{
    test_trial();
    test_session_owner();
    test_complete();
    test_differs();
    test_store();
    test_would_change();
    test_check_agrees();
    test_invoice_check_agrees();
    test_fail();
    test_fail_stored_missing();
    return t_done();
}
