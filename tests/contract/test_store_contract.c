/*
 * test_store_contract.c: the store contract (rule 39). One suite of cases written against
 * store.h only, run against every backend; a new backend is done when this passes.
 */
#include "t.h"

#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/str.h"
#include "store/store.h"

#define POOL_SIZE 9 /* what a server with 8 worker threads passes */
#define THREADS   8
#define CONSUMES  50

static char tmpdir[64]; /* /tmp/subgate-contract-XXXXXX */

/* A backend under test: each case gets a fresh, empty database from url(). */
struct target {
    const char *name;
    bool persistent; /* data outlives store_close(), so the reopen case runs */
    void (*url)(char *buf, size_t size, const char *case_name);
};

static void memory_url(char *buf, size_t size, const char *case_name)
{
    (void)case_name;
    (void)snprintf(buf, size, "sqlite::memory:");
}

static void file_url(char *buf, size_t size, const char *case_name)
{
    (void)snprintf(buf, size, "sqlite:%s/%s.db", tmpdir, case_name);
}

static const struct target targets[] = {
    { "sqlite memory", false, memory_url },
    { "sqlite file", true, file_url },
};

static struct store *open_store(const char *url)
{
    struct store *st = NULL;
    char msg[256] = "";

    if (store_open(url, POOL_SIZE, &st, msg, sizeof(msg)) != ERR_OK) {
        printf("Bail out! %s\n", msg);
        exit(1);
    }
    return st;
}

static struct store *open_migrated(const char *url)
{
    struct store *st = open_store(url);
    char msg[256] = "";
    int applied = 0;

    if (store_migrate(st, &applied, msg, sizeof(msg)) != ERR_OK) {
        printf("Bail out! %s\n", msg);
        exit(1);
    }
    return st;
}

/* Records filled with something distinct in every field, so a swapped column shows. */

static struct customer make_customer(const char *user_id, const char *stripe_id)
{
    struct customer c;

    memset(&c, 0, sizeof(c));
    str_copy(c.user_id, sizeof(c.user_id), user_id);
    str_copy(c.stripe_customer_id, sizeof(c.stripe_customer_id), stripe_id);
    str_copy(c.email, sizeof(c.email), "ana@example.com");
    c.created = 1700000001;
    return c;
}

static struct subscription make_sub(const char *id, const char *user_id, const char *status)
{
    struct subscription s;

    memset(&s, 0, sizeof(s));
    str_copy(s.id, sizeof(s.id), id);
    str_copy(s.user_id, sizeof(s.user_id), user_id);
    str_copy(s.stripe_customer_id, sizeof(s.stripe_customer_id), "cus_1");
    str_copy(s.tier, sizeof(s.tier), "premium");
    str_copy(s.price_id, sizeof(s.price_id), "price_premium");
    str_copy(s.status, sizeof(s.status), status);
    s.current_period_start = 1700000002;
    s.current_period_end = 1700000003;
    s.cancel_at_period_end = true;
    s.cancel_at = 1700000004;
    s.canceled_at = 1700000005;
    s.trial_end = 1700000006;
    s.past_due_since = 1700000007;
    s.stripe_updated = 1700000008;
    return s;
}

static struct invoice make_invoice(const char *id, const char *user_id, int64_t created)
{
    struct invoice inv;

    memset(&inv, 0, sizeof(inv));
    str_copy(inv.id, sizeof(inv.id), id);
    str_copy(inv.user_id, sizeof(inv.user_id), user_id);
    str_copy(inv.subscription_id, sizeof(inv.subscription_id), "sub_1");
    str_copy(inv.number, sizeof(inv.number), "INV-0001");
    str_copy(inv.status, sizeof(inv.status), "paid");
    inv.amount_due = 999;
    inv.amount_paid = 998;
    str_copy(inv.currency, sizeof(inv.currency), "usd");
    inv.created = created;
    inv.period_start = created - 10;
    inv.period_end = created + 10;
    str_copy(inv.hosted_invoice_url, sizeof(inv.hosted_invoice_url), "https://pay/in");
    str_copy(inv.invoice_pdf, sizeof(inv.invoice_pdf), "https://pay/in.pdf");
    return inv;
}

/* Field by field: the structs have padding, so memcmp would compare garbage. */
#define SAME_STR(f) (strcmp(a->f, b->f) == 0)
#define SAME(f)     (a->f == b->f)

static bool customer_eq(const struct customer *a, const struct customer *b)
{
    return SAME_STR(user_id) && SAME_STR(stripe_customer_id) && SAME_STR(email) &&
           SAME(had_trial) && SAME(created);
}

static bool subscription_eq(const struct subscription *a, const struct subscription *b)
{
    return SAME_STR(id) && SAME_STR(user_id) && SAME_STR(stripe_customer_id) && SAME_STR(tier) &&
           SAME_STR(price_id) && SAME_STR(status) && SAME(current_period_start) &&
           SAME(current_period_end) && SAME(cancel_at_period_end) && SAME(cancel_at) &&
           SAME(canceled_at) && SAME(trial_end) && SAME(past_due_since) && SAME(stripe_updated);
}

static bool invoice_eq(const struct invoice *a, const struct invoice *b)
{
    return SAME_STR(id) && SAME_STR(user_id) && SAME_STR(subscription_id) && SAME_STR(number) &&
           SAME_STR(status) && SAME(amount_due) && SAME(amount_paid) && SAME_STR(currency) &&
           SAME(created) && SAME(period_start) && SAME(period_end) &&
           SAME_STR(hosted_invoice_url) && SAME_STR(invoice_pdf);
}

/* Cases run against every target */

static void case_migrate(const char *url, const struct target *t)
{
    struct store *st = open_store(url);
    int version = -1, applied = -1;
    char msg[256] = "";

    T_EQ_I64(store_schema_version(st, &version), ERR_OK, "%s: schema version readable", t->name);
    T_EQ_I64(version, 0, "%s: a new database is at version 0", t->name);
    T_OK(store_schema_version_latest(st) >= 1, "%s: the binary knows a schema", t->name);
    T_EQ_I64(store_migrate(st, &applied, msg, sizeof(msg)), ERR_OK, "%s: migrate %s", t->name, msg);
    T_EQ_I64(applied, store_schema_version_latest(st), "%s: every migration ran", t->name);
    T_EQ_I64(store_migrate(st, &applied, msg, sizeof(msg)), ERR_OK, "%s: migrate again", t->name);
    T_EQ_I64(applied, 0, "%s: a second migrate applies nothing", t->name);
    T_EQ_I64(store_schema_version(st, &version), ERR_OK, "%s: schema version readable", t->name);
    T_EQ_I64(version, store_schema_version_latest(st), "%s: at the latest version", t->name);
    T_EQ_STR(store_backend_name(st), "sqlite", "%s: backend name", t->name);
    store_close(st);
}

static void case_ping(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);

    T_EQ_I64(store_ping(st), ERR_OK, "%s: ping", t->name);
    store_close(st);
}

static void case_customer(const char *url, const struct target *t)
{
    static const struct {
        const char *user_id;
        const char *stripe_id;
        enum err want;
    } inserts[] = {
        { "u1", "cus_1", ERR_OK },       { "u1", "cus_2", ERR_CONFLICT }, /* same user */
        { "u2", "cus_1", ERR_CONFLICT },                                  /* same Stripe customer */
        { "u2", "cus_2", ERR_OK },       { "", "cus_3", ERR_INVALID },    { "u3", "", ERR_INVALID },
    };
    struct store *st = open_migrated(url);
    struct customer want = make_customer("u1", "cus_1"), got;

    for (size_t i = 0; i < ARRAY_SIZE(inserts); i++) {
        struct customer c = make_customer(inserts[i].user_id, inserts[i].stripe_id);
        T_EQ_I64(store_customer_insert(st, &c), inserts[i].want, "%s: insert customer (%s, %s)",
                 t->name, inserts[i].user_id, inserts[i].stripe_id);
    }
    T_EQ_I64(store_customer_get(st, "u1", &got), ERR_OK, "%s: get customer", t->name);
    T_OK(customer_eq(&got, &want), "%s: customer round trip, conflicts changed nothing", t->name);
    T_EQ_I64(store_customer_get_by_stripe_id(st, "cus_2", &got), ERR_OK, "%s: by Stripe id",
             t->name);
    T_EQ_STR(got.user_id, "u2", "%s: by Stripe id finds its user", t->name);
    T_EQ_I64(store_customer_get(st, "nobody", &got), ERR_NOT_FOUND, "%s: unknown user", t->name);
    T_EQ_I64(store_customer_get_by_stripe_id(st, "cus_x", &got), ERR_NOT_FOUND,
             "%s: unknown Stripe id", t->name);
    T_OK(!want.had_trial, "%s: no trial yet", t->name);
    T_EQ_I64(store_customer_mark_trial(st, "u1"), ERR_OK, "%s: mark trial", t->name);
    T_EQ_I64(store_customer_get(st, "u1", &got), ERR_OK, "%s: get after trial", t->name);
    T_OK(got.had_trial, "%s: trial recorded", t->name);
    T_EQ_I64(store_customer_mark_trial(st, "nobody"), ERR_NOT_FOUND, "%s: mark unknown", t->name);
    store_close(st);
}

static void case_too_long(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct customer c = make_customer("u1", "cus_1");
    struct subscription s = make_sub("sub_1", "u1", "active");
    char long_id[USER_ID_MAX + 1];

    memset(c.email, 'e', sizeof(c.email)); /* no terminator inside the array */
    T_EQ_I64(store_customer_insert(st, &c), ERR_INVALID, "%s: unterminated email", t->name);
    memset(s.price_id, 'p', sizeof(s.price_id));
    T_EQ_I64(store_subscription_upsert(st, &s), ERR_INVALID, "%s: unterminated price", t->name);
    memset(long_id, 'u', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    T_EQ_I64(store_customer_get(st, long_id, &c), ERR_INVALID, "%s: user id too long", t->name);
    store_close(st);
}

static void case_subscription(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct subscription want = make_sub("sub_1", "u1", "trialing"), got;

    T_EQ_I64(store_subscription_upsert(st, &want), ERR_OK, "%s: insert subscription", t->name);
    T_EQ_I64(store_subscription_get(st, "sub_1", &got), ERR_OK, "%s: get subscription", t->name);
    T_OK(subscription_eq(&got, &want), "%s: subscription round trip", t->name);
    want = make_sub("sub_1", "u2", "active");
    want.cancel_at_period_end = false;
    want.current_period_end = 1800000000;
    T_EQ_I64(store_subscription_upsert(st, &want), ERR_OK, "%s: update subscription", t->name);
    T_EQ_I64(store_subscription_get(st, "sub_1", &got), ERR_OK, "%s: get updated", t->name);
    T_OK(subscription_eq(&got, &want), "%s: the update overwrote every field", t->name);
    T_EQ_I64(store_subscription_get(st, "sub_x", &got), ERR_NOT_FOUND, "%s: unknown id", t->name);
    store_close(st);
}

/* Upserts sub_<row>_a, _b, ... with these statuses, one clock second apart. */
static enum err seed_subs(struct store *st, size_t row, const char *user,
                          const char *const statuses[3])
{
    enum err err = ERR_OK;

    for (int j = 0; j < 3 && statuses[j] && err == ERR_OK; j++) {
        char id[32];
        (void)snprintf(id, sizeof(id), "sub_%zu_%c", row, 'a' + j);
        struct subscription s = make_sub(id, user, statuses[j]);
        clock_set_fake(1700000000 + j);
        err = store_subscription_upsert(st, &s);
    }
    clock_set_fake(-1);
    return err;
}

static void case_subscription_for_user(const char *url, const struct target *t)
{
    static const struct {
        const char *what;
        const char *statuses[3]; /* of sub_<row>_a, _b, _c, upserted in this order */
        char want;               /* 'a', 'b', 'c'; 0: ERR_NOT_FOUND */
    } rows[] = {
        { "none", { NULL }, 0 },
        { "the only one", { "canceled" }, 'a' },
        { "live before newer canceled", { "active", "canceled", "incomplete_expired" }, 'a' },
        { "past_due is live", { "canceled", "past_due", "unpaid" }, 'b' },
        { "newest of the live", { "trialing", "active", "canceled" }, 'b' },
        { "newest of the dead", { "canceled", "unpaid", "canceled" }, 'c' },
    };
    struct store *st = open_migrated(url);

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        char user[32], want[32];
        struct subscription got;
        (void)snprintf(user, sizeof(user), "user%zu", i);
        (void)snprintf(want, sizeof(want), "sub_%zu_%c", i, rows[i].want);
        T_EQ_I64(seed_subs(st, i, user, rows[i].statuses), ERR_OK, "%s: %s: upserts", t->name,
                 rows[i].what);
        enum err err = store_subscription_get_for_user(st, user, &got);
        T_EQ_I64(err, rows[i].want ? ERR_OK : ERR_NOT_FOUND, "%s: %s: found", t->name,
                 rows[i].what);
        if (rows[i].want && err == ERR_OK)
            T_EQ_STR(got.id, want, "%s: %s: which one", t->name, rows[i].what);
    }
    store_close(st);
}

static void case_invoice_list(const char *url, const struct target *t)
{
    static const struct {
        const char *id;
        int64_t created;
    } rows[] = {
        { "in_b", 200 }, { "in_d", 400 }, { "in_a", 100 }, { "in_c2", 300 }, { "in_c1", 300 },
    };

    static const char *const newest_first[] = { "in_d", "in_c2", "in_c1", "in_b", "in_a" };
    struct store *st = open_migrated(url);
    struct invoice got[8], other = make_invoice("in_other", "u2", 500);
    struct invoice want = make_invoice("in_a", "u1", 100);
    int n = -1;

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct invoice inv = make_invoice(rows[i].id, "u1", rows[i].created);
        T_EQ_I64(store_invoice_upsert(st, &inv), ERR_OK, "%s: upsert %s", t->name, rows[i].id);
    }
    T_EQ_I64(store_invoice_upsert(st, &other), ERR_OK, "%s: another user's invoice", t->name);
    T_EQ_I64(store_invoice_list(st, "u1", 8, got, &n), ERR_OK, "%s: list", t->name);
    T_EQ_I64(n, 5, "%s: only the user's invoices", t->name);
    for (int i = 0; i < n && i < 5; i++)
        T_EQ_STR(got[i].id, newest_first[i], "%s: invoice %d, newest first", t->name, i);
    T_OK(n == 5 && invoice_eq(&got[4], &want), "%s: invoice round trip", t->name);
    T_EQ_I64(store_invoice_list(st, "u1", 2, got, &n), ERR_OK, "%s: list max 2", t->name);
    T_EQ_I64(n, 2, "%s: max respected", t->name);
    T_EQ_STR(got[1].id, "in_c2", "%s: the first two", t->name);
    want.amount_paid = 999;
    T_EQ_I64(store_invoice_upsert(st, &want), ERR_OK, "%s: update invoice", t->name);
    T_EQ_I64(store_invoice_list(st, "u1", 8, got, &n), ERR_OK, "%s: list again", t->name);
    T_OK(n == 5 && got[4].amount_paid == 999, "%s: update overwrote, no duplicate", t->name);
    T_EQ_I64(store_invoice_list(st, "nobody", 8, got, &n), ERR_OK, "%s: list none", t->name);
    T_EQ_I64(n, 0, "%s: empty list", t->name);
    store_close(st);
}

static void case_usage(const char *url, const struct target *t)
{
    static const struct {
        const char *quota;
        int64_t window_start;
        int64_t n;
        int64_t limit;
        bool want_granted;
        int64_t want_used;
    } steps[] = {
        { "ai_minutes", 86400, 2, 5, true, 2 },
        { "ai_minutes", 86400, 3, 5, true, 5 },   /* exactly up to the limit */
        { "ai_minutes", 86400, 1, 5, false, 5 },  /* one past: refused, nothing recorded */
        { "ai_minutes", 172800, 6, 5, false, 0 }, /* more than the limit in a new window */
        { "ai_minutes", 172800, 5, 5, true, 5 },  /* the refusal left no row behind */
        { "scenarios", 86400, 1, 1, true, 1 },    /* quotas are separate counters */
        { "scenarios", 86400, 1, 0, false, 1 },   /* a lowered limit refuses */
        { "unlimited", 86400, 1000000, -1, true, 1000000 },
        { "unlimited", 86400, INT64_MAX / 2, -1, true, INT64_MAX / 2 + 1000000 },
    };
    struct store *st = open_migrated(url);
    struct usage_grant g;
    int64_t used = -1;
    bool granted;

    memset(&g, 0, sizeof(g));
    str_copy(g.user_id, sizeof(g.user_id), "u1");
    for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
        str_copy(g.quota, sizeof(g.quota), steps[i].quota);
        g.window_start = steps[i].window_start;
        g.n = steps[i].n;
        g.limit = steps[i].limit;
        T_EQ_I64(store_usage_consume(st, &g, &granted, &used), ERR_OK, "%s: consume step %zu",
                 t->name, i);
        T_EQ_I64(granted, steps[i].want_granted, "%s: step %zu granted", t->name, i);
        T_EQ_I64(used, steps[i].want_used, "%s: step %zu used after", t->name, i);
        T_EQ_I64(store_usage_get(st, "u1", g.quota, g.window_start, &used), ERR_OK,
                 "%s: usage get %zu", t->name, i);
        T_EQ_I64(used, steps[i].want_used, "%s: step %zu counter", t->name, i);
    }
    T_EQ_I64(store_usage_get(st, "u2", "ai_minutes", 86400, &used), ERR_OK, "%s: fresh", t->name);
    T_EQ_I64(used, 0, "%s: a fresh counter reads 0", t->name);
    g.n = 0;
    T_EQ_I64(store_usage_consume(st, &g, &granted, &used), ERR_INVALID, "%s: n = 0", t->name);
    store_close(st);
}

struct worker {
    struct store *st;
    int granted;
    int failed;
};

static void *consume_worker(void *arg)
{
    struct worker *w = arg;
    struct usage_grant g;

    memset(&g, 0, sizeof(g));
    str_copy(g.user_id, sizeof(g.user_id), "busy");
    str_copy(g.quota, sizeof(g.quota), "ai_minutes");
    g.window_start = 86400;
    g.n = 1;
    g.limit = 100;
    for (int i = 0; i < CONSUMES; i++) {
        bool granted = false;
        int64_t used = 0;
        if (store_usage_consume(w->st, &g, &granted, &used) != ERR_OK || used > 100)
            w->failed++;
        w->granted += granted;
    }
    return NULL;
}

static void case_concurrent_consume(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct worker w[THREADS];
    pthread_t th[THREADS];
    int granted = 0, failed = 0;
    int64_t used = -1;

    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){ st, 0, 0 };
        if (pthread_create(&th[i], NULL, consume_worker, &w[i]) != 0) {
            printf("Bail out! pthread_create\n");
            exit(1);
        }
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        granted += w[i].granted;
        failed += w[i].failed;
    }
    T_EQ_I64(failed, 0, "%s: no consume failed or saw the counter past the limit", t->name);
    T_EQ_I64(granted, 100, "%s: %d x %d consumes grant exactly the limit", t->name, THREADS,
             CONSUMES);
    T_EQ_I64(store_usage_get(st, "busy", "ai_minutes", 86400, &used), ERR_OK, "%s: read counter",
             t->name);
    T_EQ_I64(used, 100, "%s: the counter reads the limit", t->name);
    store_close(st);
}

static void case_reopen(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct customer c = make_customer("u1", "cus_1");
    struct usage_grant g = { "u1", "scenarios", 604800, 2, 5 };
    char msg[256] = "";
    int applied = -1;
    int64_t used = -1;
    bool granted = false;

    T_EQ_I64(store_customer_insert(st, &c), ERR_OK, "%s: insert before reopen", t->name);
    T_EQ_I64(store_usage_consume(st, &g, &granted, &used), ERR_OK, "%s: consume", t->name);
    store_close(st);
    st = open_store(url);
    T_EQ_I64(store_migrate(st, &applied, msg, sizeof(msg)), ERR_OK, "%s: migrate", t->name);
    T_EQ_I64(applied, 0, "%s: a reopened database needs no migration", t->name);
    T_EQ_I64(store_customer_get(st, "u1", &c), ERR_OK, "%s: customer survives reopen", t->name);
    T_EQ_I64(store_usage_get(st, "u1", "scenarios", 604800, &used), ERR_OK, "%s: usage", t->name);
    T_EQ_I64(used, 2, "%s: usage survives reopen", t->name);
    store_close(st);
}

static void case_event(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct webhook_event ev;

    T_EQ_I64(store_event_get(st, "evt_none", &ev), ERR_NOT_FOUND, "%s: unknown event", t->name);
    T_EQ_I64(store_event_get(st, "", &ev), ERR_INVALID, "%s: empty event id", t->name);
    store_close(st);
}

static const struct {
    const char *name;
    void (*run)(const char *url, const struct target *t);
    bool persistent_only;
} cases[] = {
    { "migrate", case_migrate, false },
    { "ping", case_ping, false },
    { "customer", case_customer, false },
    { "too_long", case_too_long, false },
    { "subscription", case_subscription, false },
    { "subscription_for_user", case_subscription_for_user, false },
    { "invoice_list", case_invoice_list, false },
    { "usage", case_usage, false },
    { "concurrent_consume", case_concurrent_consume, false },
    { "event", case_event, false },
    { "reopen", case_reopen, true },
};

/* Cases about opening, not about one backend's data */

static void case_open_errors(void)
{
    static const struct {
        const char *url;
        enum err want;
        const char *want_msg;
    } rows[] = {
        { "sqlite:/dev/null/sub/x.db", ERR_STORE, "cannot open database '/dev/null/sub/x.db': " },
        { "sqlite:", ERR_INVALID, "cannot open database '': " },
        { "postgres://u:secret@db/subgate", ERR_UNAVAILABLE, "postgres backend not built yet" },
        { "postgresql://u:secret@db/subgate", ERR_UNAVAILABLE, "postgres backend not built yet" },
        { "mysql://u:secret@db/subgate", ERR_INVALID, "unsupported scheme 'mysql'" },
    };

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct store *st = NULL;
        char msg[256] = "";
        T_EQ_I64(store_open(rows[i].url, 2, &st, msg, sizeof(msg)), rows[i].want, "open %s",
                 rows[i].url);
        T_OK(st == NULL, "open %s: no store", rows[i].url);
        T_OK(strstr(msg, rows[i].want_msg) != NULL, "open %s: message '%s'", rows[i].url, msg);
        T_OK(strstr(msg, "secret") == NULL, "open %s: no password in the message", rows[i].url);
    }
}

static void case_open_creates_parents(void)
{
    char url[PATH_MAX + 16], path[PATH_MAX];
    struct store *st = NULL;
    char msg[256] = "";

    (void)snprintf(path, sizeof(path), "%s/a/b/x.db", tmpdir);
    (void)snprintf(url, sizeof(url), "sqlite:%s", path);
    T_EQ_I64(store_open(url, 2, &st, msg, sizeof(msg)), ERR_OK, "open creates parents: %s", msg);
    T_EQ_I64(store_ping(st), ERR_OK, "ping the new database");
    store_close(st);
    T_OK(access(path, F_OK) == 0, "the database file exists");
    store_close(NULL);
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    (void)snprintf(tmpdir, sizeof(tmpdir), "/tmp/subgate-contract-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("Bail out! mkdtemp\n");
        return 1;
    }
    for (size_t i = 0; i < ARRAY_SIZE(targets); i++) {
        for (size_t j = 0; j < ARRAY_SIZE(cases); j++) {
            char url[PATH_MAX + 16];
            if (cases[j].persistent_only && !targets[i].persistent)
                continue;
            printf("# %s: %s\n", targets[i].name, cases[j].name);
            targets[i].url(url, sizeof(url), cases[j].name);
            cases[j].run(url, &targets[i]);
        }
    }
    case_open_errors();
    case_open_creates_parents();
    if (nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        printf("# could not remove %s\n", tmpdir);
    return t_done();
}
