/*
 * test_store_contract.c: the store contract (rule 39). One suite of cases written against
 * store.h only, run against every backend; a new backend is done when this passes. PostgreSQL
 * joins when SUBGATE_TEST_PG_URL names a server (scripts/pg.sh start prints one): each case gets
 * a database of its own, dropped at the end; with SUBGATE_TEST_PG_DIR (pg.sh's DIR) too, the
 * outage cases stop and restart that server. SUBGATE_TEST_GROUP_COMMIT=off: see open_store().
 */
#include "t.h"

#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "base/clock.h"
#include "base/fiber.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "billing/status.h"
#include "store/store.h"

#define POOL_SIZE 9 /* what a server with 8 worker threads passes */
#define THREADS   8
#define CONSUMES  50

static char tmpdir[64]; /* /tmp/subgate-contract-XXXXXX */

/* A backend under test: each case gets a fresh, empty database from url(). */
struct target {
    const char *name;
    const char *backend; /* what store_backend_name() says */
    bool persistent;     /* data outlives store_close(), so the reopen case runs */
    void (*url)(char *buf, size_t size, const char *case_name);
    bool (*available)(void); /* NULL: always */
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

/* PostgreSQL: a fresh database per case, created through a maintenance connection. */

#define PG_DBS_MAX 64

static PGconn *pg_admin;            /* to SUBGATE_TEST_PG_URL's database */
static char pg_dbs[PG_DBS_MAX][64]; /* created here, dropped at the end */
static int pg_ndbs;

static bool pg_available(void)
{
    const char *url = getenv("SUBGATE_TEST_PG_URL");

    return url && url[0];
}

static void pg_admin_exec(const char *sql)
{
    PGresult *res = PQexec(pg_admin, sql);

    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        printf("Bail out! %s: %s\n", sql, PQerrorMessage(pg_admin));
        exit(1);
    }
    PQclear(res);
}

/* SUBGATE_TEST_PG_URL with its database name replaced by db. */
static void pg_url_for(char *buf, size_t size, const char *db)
{
    const char *base = getenv("SUBGATE_TEST_PG_URL");
    const char *host = base ? strstr(base, "://") : NULL;
    const char *path = host ? strchr(host + 3, '/') : NULL;
    const char *query = base ? strchr(base, '?') : NULL;

    if (!path || (query && path > query)) {
        printf("Bail out! SUBGATE_TEST_PG_URL has no /database\n");
        exit(1);
    }
    (void)snprintf(buf, size, "%.*s/%s%s", (int)(path - base), base, db, query ? query : "");
}

static void pg_url(char *buf, size_t size, const char *case_name)
{
    char sql[128];

    if (!pg_admin) {
        pg_admin = PQconnectdb(getenv("SUBGATE_TEST_PG_URL"));
        if (PQstatus(pg_admin) != CONNECTION_OK) {
            printf("Bail out! SUBGATE_TEST_PG_URL: %s\n", PQerrorMessage(pg_admin));
            exit(1);
        }
    }
    if (pg_ndbs == PG_DBS_MAX) {
        printf("Bail out! too many databases\n");
        exit(1);
    }
    (void)snprintf(pg_dbs[pg_ndbs], sizeof(pg_dbs[0]), "subgate_c%d_%s", (int)getpid(), case_name);
    (void)snprintf(sql, sizeof(sql), "CREATE DATABASE %.63s", pg_dbs[pg_ndbs]);
    pg_admin_exec(sql);
    pg_url_for(buf, size, pg_dbs[pg_ndbs++]);
}

static void pg_drop_all(void)
{
    char sql[128];

    PQreset(pg_admin); /* the outage case restarted the server */
    for (int i = 0; i < pg_ndbs; i++) {
        (void)snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %.63s WITH (FORCE)", pg_dbs[i]);
        pg_admin_exec(sql);
    }
    PQfinish(pg_admin);
}

static const struct target targets[] = {
    { "sqlite memory", "sqlite", false, memory_url, NULL },
    { "sqlite file", "sqlite", true, file_url, NULL },
    { "postgres", "postgres", true, pg_url, pg_available },
};

/* SUBGATE_TEST_GROUP_COMMIT=off runs the suite with every write alone (the group cases fail). */
static struct store *open_store(const char *url)
{
    struct store *st = NULL;
    char msg[256] = "";
    const char *group = getenv("SUBGATE_TEST_GROUP_COMMIT");

    if (store_open(url, POOL_SIZE, &st, msg, sizeof(msg)) != ERR_OK) {
        printf("Bail out! %s\n", msg);
        exit(1);
    }
    store_group_commit_set(st, !(group && strcmp(group, "off") == 0));
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

static struct subscription make_sub(const char *id, const char *user_id, enum sub_status status)
{
    struct subscription s;

    memset(&s, 0, sizeof(s));
    str_copy(s.id, sizeof(s.id), id);
    str_copy(s.user_id, sizeof(s.user_id), user_id);
    str_copy(s.stripe_customer_id, sizeof(s.stripe_customer_id), "cus_1");
    str_copy(s.tier, sizeof(s.tier), "premium");
    str_copy(s.price_id, sizeof(s.price_id), "price_premium");
    s.status = status;
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
           SAME_STR(price_id) && SAME(status) && SAME(current_period_start) &&
           SAME(current_period_end) && SAME(cancel_at_period_end) && SAME(cancel_at) &&
           SAME(canceled_at) && SAME(trial_end) && SAME(past_due_since) && SAME(stripe_updated) &&
           SAME_STR(schedule_id) && SAME_STR(pending_price_id) && SAME(pending_expires_at) &&
           SAME_STR(latest_invoice);
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
    T_EQ_STR(store_backend_name(st), t->backend, "%s: backend name", t->name);
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
    struct subscription s = make_sub("sub_1", "u1", SUB_STATUS_ACTIVE);
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
    struct subscription want = make_sub("sub_1", "u1", SUB_STATUS_TRIALING), got;

    T_EQ_I64(store_subscription_upsert(st, &want), ERR_OK, "%s: insert subscription", t->name);
    T_EQ_I64(store_subscription_get(st, "sub_1", &got), ERR_OK, "%s: get subscription", t->name);
    T_OK(subscription_eq(&got, &want), "%s: subscription round trip", t->name);
    want = make_sub("sub_1", "u2", SUB_STATUS_ACTIVE);
    want.cancel_at_period_end = false;
    want.current_period_end = 1800000000;
    T_EQ_I64(store_subscription_upsert(st, &want), ERR_OK, "%s: update subscription", t->name);
    T_EQ_I64(store_subscription_get(st, "sub_1", &got), ERR_OK, "%s: get updated", t->name);
    T_OK(subscription_eq(&got, &want), "%s: the update overwrote every field", t->name);
    T_EQ_I64(store_subscription_get(st, "sub_x", &got), ERR_NOT_FOUND, "%s: unknown id", t->name);
    store_close(st);
}

/*
 * Upserts sub_<row>_a, _b, ... with these statuses, one clock second apart, up to the first
 * SUB_STATUS_MISSING.
 */
static enum err seed_subs(struct store *st, size_t row, const char *user,
                          const enum sub_status statuses[3])
{
    enum err err = ERR_OK;

    for (int j = 0; j < 3 && statuses[j] != SUB_STATUS_MISSING && err == ERR_OK; j++) {
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
        enum sub_status statuses[3]; /* of sub_<row>_a, _b, _c, upserted in this order */
        char want;                   /* 'a', 'b', 'c'; 0: ERR_NOT_FOUND */
    } rows[] = {
        { "none", { SUB_STATUS_MISSING }, 0 },
        { "the only one", { SUB_STATUS_CANCELED }, 'a' },
        { "live before newer canceled",
          { SUB_STATUS_ACTIVE, SUB_STATUS_CANCELED, SUB_STATUS_INCOMPLETE_EXPIRED },
          'a' },
        { "past_due is live",
          { SUB_STATUS_CANCELED, SUB_STATUS_PAST_DUE, SUB_STATUS_UNPAID },
          'b' },
        { "newest of the live",
          { SUB_STATUS_TRIALING, SUB_STATUS_ACTIVE, SUB_STATUS_CANCELED },
          'b' },
        { "newest of the dead",
          { SUB_STATUS_CANCELED, SUB_STATUS_UNPAID, SUB_STATUS_CANCELED },
          'c' },
        { "an unknown status is not live", { SUB_STATUS_TRIALING, SUB_STATUS_UNKNOWN }, 'a' },
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
    T_EQ_I64(store_invoice_get(st, "in_a", &got[0]), ERR_OK, "%s: get by id", t->name);
    T_OK(invoice_eq(&got[0], &want), "%s: get round trip", t->name);
    T_EQ_I64(store_invoice_get(st, "in_none", &got[0]), ERR_NOT_FOUND, "%s: unknown id", t->name);
    T_EQ_I64(store_invoice_get(st, "", &got[0]), ERR_INVALID, "%s: empty id", t->name);
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
    {
        /* several counters in one read: each as store_usage_get reads it, 0 when never used */
        const char *quotas[ARRAY_SIZE(steps) + 1];
        int64_t starts[ARRAY_SIZE(steps) + 1], many[ARRAY_SIZE(steps) + 1];
        for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
            quotas[i] = steps[i].quota;
            starts[i] = steps[i].window_start;
        }
        quotas[ARRAY_SIZE(steps)] = "never_used";
        starts[ARRAY_SIZE(steps)] = 86400;
        T_EQ_I64(store_usage_get_many(st, "u1", ARRAY_SIZE(steps) + 1, quotas, starts, many),
                 ERR_OK, "%s: get many", t->name);
        for (size_t i = 0; i <= ARRAY_SIZE(steps); i++) {
            int64_t one = -1;
            T_EQ_I64(store_usage_get(st, "u1", quotas[i], starts[i], &one), ERR_OK,
                     "%s: get one %zu", t->name, i);
            T_EQ_I64(many[i], one, "%s: counter %zu read alone and with the others", t->name, i);
        }
        quotas[0] = "";
        T_EQ_I64(store_usage_get_many(st, "u1", 1, quotas, starts, many), ERR_INVALID,
                 "%s: an empty quota id is refused", t->name);
    }
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

static void *consume_one(void *arg)
{
    struct worker *w = arg;
    struct usage_grant g = { "busy", "ai_minutes", 86400, 1, -1, false, NULL, NULL };
    bool granted = false;
    int64_t used = 0;

    if (store_usage_consume(w->st, &g, &granted, &used) != ERR_OK || !granted)
        w->failed++;
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
    struct usage_grant g = { "u1", "scenarios", 604800, 2, 5, false, NULL, NULL };
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

struct migrator {
    struct store *st;
    enum err err;
    int applied;
};

static void *migrate_worker(void *arg)
{
    struct migrator *m = arg;
    char msg[256] = "";

    m->err = store_migrate(m->st, &m->applied, msg, sizeof(msg));
    return NULL;
}

/* Two processes starting at once: each migration runs exactly once. */
static void case_migrate_concurrent(const char *url, const struct target *t)
{
    struct migrator m[2] = { { open_store(url), ERR_INTERNAL, 0 },
                             { open_store(url), ERR_INTERNAL, 0 } };
    pthread_t th[2];
    int version = -1;

    for (int i = 0; i < 2; i++)
        if (pthread_create(&th[i], NULL, migrate_worker, &m[i]) != 0)
            exit(1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    T_EQ_I64(m[0].err, ERR_OK, "%s: first migrator", t->name);
    T_EQ_I64(m[1].err, ERR_OK, "%s: second migrator", t->name);
    T_EQ_I64(m[0].applied + m[1].applied, store_schema_version_latest(m[0].st),
             "%s: every migration ran once in all", t->name);
    T_EQ_I64(store_schema_version(m[1].st, &version), ERR_OK, "%s: version", t->name);
    T_EQ_I64(version, store_schema_version_latest(m[1].st), "%s: at the latest", t->name);
    store_close(m[0].st);
    store_close(m[1].st);
}

#define APPLY_STATES 20 /* per thread */

struct applier {
    struct store *st;
    int index;
    int failed;
};

/* Every status round trips through its text column; a subscription without one is refused. */
static void case_subscription_status(const char *url, const struct target *t)
{
    static const enum sub_status statuses[] = {
        SUB_STATUS_UNKNOWN,  SUB_STATUS_INCOMPLETE, SUB_STATUS_INCOMPLETE_EXPIRED,
        SUB_STATUS_TRIALING, SUB_STATUS_ACTIVE,     SUB_STATUS_PAST_DUE,
        SUB_STATUS_CANCELED, SUB_STATUS_UNPAID,     SUB_STATUS_PAUSED,
    };
    struct store *st = open_migrated(url);
    struct subscription s = make_sub("sub_1", "u1", SUB_STATUS_MISSING), got;
    bool applied = true;

    T_EQ_I64(store_subscription_upsert(st, &s), ERR_INVALID, "%s: no status: upsert refused",
             t->name);
    T_EQ_I64(store_subscription_apply(st, &s, &applied), ERR_INVALID,
             "%s: no status: apply refused", t->name);
    T_OK(!applied, "%s: no status: not applied", t->name);
    for (size_t i = 0; i < ARRAY_SIZE(statuses); i++) {
        const char *name = sub_status_name(statuses[i]);
        s.status = statuses[i];
        T_EQ_I64(store_subscription_upsert(st, &s), ERR_OK, "%s: %s: upsert", t->name, name);
        T_EQ_I64(store_subscription_get(st, "sub_1", &got), ERR_OK, "%s: %s: get", t->name, name);
        T_EQ_STR(sub_status_name(got.status), name, "%s: %s: round trip", t->name, name);
    }
    store_close(st);
}

/* Thread i applies states i, i + THREADS, ... of one subscription, in a scrambled order. */
static void *apply_worker(void *arg)
{
    struct applier *a = arg;

    for (int k = 0; k < APPLY_STATES; k++) {
        struct subscription s = make_sub("sub_race", "u1", SUB_STATUS_ACTIVE);
        bool applied = false;
        s.past_due_since = 0;
        s.stripe_updated = 1700000000 + ((k * THREADS + a->index) * 37) % (THREADS * APPLY_STATES);
        if (store_subscription_apply(a->st, &s, &applied) != ERR_OK)
            a->failed++;
    }
    return NULL;
}

static void case_subscription_apply(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct subscription s = make_sub("sub_1", "u1", SUB_STATUS_ACTIVE), got;
    struct applier a[THREADS];
    pthread_t th[THREADS];
    bool applied = false;
    int failed = 0;

    s.past_due_since = 0;
    T_EQ_I64(store_subscription_apply(st, &s, &applied), ERR_OK, "%s: apply new", t->name);
    T_OK(applied, "%s: a new subscription is stored", t->name);
    s.stripe_updated--;
    s.status = SUB_STATUS_PAST_DUE;
    T_EQ_I64(store_subscription_apply(st, &s, &applied), ERR_OK, "%s: apply older", t->name);
    T_OK(!applied, "%s: an older state is not stored", t->name);
    s.stripe_updated += 2;
    T_EQ_I64(store_subscription_apply(st, &s, &applied), ERR_OK, "%s: apply newer", t->name);
    T_OK(applied, "%s: a newer state is stored", t->name);
    T_EQ_I64(store_subscription_get(st, "sub_1", &got), ERR_OK, "%s: get", t->name);
    T_EQ_STR(sub_status_name(got.status), "past_due", "%s: the newer status", t->name);
    T_EQ_I64(got.past_due_since, s.stripe_updated, "%s: past_due_since computed", t->name);
    for (int i = 0; i < THREADS; i++) {
        a[i] = (struct applier){ st, i, 0 };
        if (pthread_create(&th[i], NULL, apply_worker, &a[i]) != 0)
            exit(1);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        failed += a[i].failed;
    }
    T_EQ_I64(failed, 0, "%s: concurrent applies succeed", t->name);
    T_EQ_I64(store_subscription_get(st, "sub_race", &got), ERR_OK, "%s: get raced", t->name);
    T_EQ_I64(got.stripe_updated, 1700000000 + THREADS * APPLY_STATES - 1,
             "%s: %d concurrent states end with the newest", t->name, THREADS * APPLY_STATES);
    store_close(st);
}

/* Webhook inbox */

static const char raw_body[] = "{\"id\":\"evt\"}\0tail"; /* a NUL inside: kept byte for byte */

static struct billing_event make_event(const char *id, enum billing_event_kind kind)
{
    struct billing_event ev;

    memset(&ev, 0, sizeof(ev));
    str_copy(ev.id, sizeof(ev.id), id);
    str_copy(ev.type, sizeof(ev.type), kind == EVENT_IGNORED ? "customer.created" : "some.type");
    ev.created = 1700000100;
    ev.kind = kind;
    str_copy(ev.customer_id, sizeof(ev.customer_id), "cus_ev");
    return ev;
}

static enum err record(struct store *st, const struct billing_event *ev, enum store_event_mode mode,
                       enum store_event_result *result)
{
    const struct store_event_in in = { ev, raw_body, sizeof(raw_body) - 1, mode, NULL };
    char msg[256] = "";

    return store_event_record_apply(st, &in, result, msg, sizeof(msg));
}

static void check_event(struct store *st, const struct target *t, const char *id,
                        const char *status, int attempts)
{
    struct webhook_event ev;

    T_EQ_I64(store_event_get(st, id, &ev), ERR_OK, "%s: %s stored", t->name, id);
    T_EQ_STR(ev.status, status, "%s: %s status", t->name, id);
    T_EQ_I64(ev.attempts, attempts, "%s: %s attempts", t->name, id);
}

/* What the inbox steps of case_event_inbox left behind. */
static void case_event_inbox_effects(struct store *st, const struct target *t)
{
    struct webhook_event list[8];
    struct customer cus;
    struct subscription sub;
    struct invoice inv[2];
    char *raw = NULL;
    size_t raw_len = 0;
    int n = -1;
    struct billing_event bad = make_event("evt_bad", EVENT_IGNORED);
    const struct store_event_in in = { &bad, "\xff\xfe", 2, STORE_EVENT_RECEIVE, NULL };

    T_EQ_I64(store_customer_get(st, "u_ev", &cus), ERR_OK, "%s: checkout linked", t->name);
    T_EQ_STR(cus.stripe_customer_id, "cus_ev", "%s: to its customer", t->name);
    T_EQ_I64(store_invoice_list(st, "u_ev", 2, inv, &n), ERR_OK, "%s: invoices", t->name);
    T_EQ_I64(n, 1, "%s: the invoice, once, for the customer's user", t->name);
    T_EQ_I64(store_subscription_get_for_user(st, "u_ev", &sub), ERR_OK, "%s: sub", t->name);
    T_EQ_STR(sub.id, "sub_ev", "%s: the subscription, for the customer's user", t->name);
    T_EQ_I64(store_event_get_raw(st, "evt_inv", list, &raw, &raw_len), ERR_OK, "%s: raw", t->name);
    T_OK(raw && raw_len == sizeof(raw_body) - 1 && memcmp(raw, raw_body, raw_len) == 0,
         "%s: the raw body, byte for byte", t->name);
    free(raw);
    T_EQ_I64(store_event_get_raw(st, "evt_none", list, &raw, &raw_len), ERR_NOT_FOUND,
             "%s: raw of an unknown event", t->name);
    T_EQ_I64(store_event_record_failed(st, &in, "bad \xe2\x82"), ERR_OK, "%s: failed", t->name);
    T_EQ_I64(store_event_list(st, true, 8, list, &n), ERR_OK, "%s: list failed", t->name);
    T_EQ_I64(n, 1, "%s: only the failed one", t->name);
    T_EQ_STR(list[0].id, "evt_bad", "%s: the failed one", t->name);
    T_EQ_I64(store_event_list(st, false, 8, list, &n), ERR_OK, "%s: list all", t->name);
    T_EQ_I64(n, 5, "%s: every event, once", t->name);
}

static void case_event_inbox(const char *url, const struct target *t)
{
    static const struct {
        const char *what;
        const char *id;
        enum billing_event_kind kind;
        enum store_event_mode mode;
        enum err want_err;
        enum store_event_result want;
        const char *want_status;
        int want_attempts;
    } steps[] = {
        { "invoice, customer unknown", "evt_inv", EVENT_INVOICE, STORE_EVENT_RECEIVE, ERR_NOT_FOUND,
          STORE_EVENT_DUPLICATE, "failed", 1 },
        { "checkout links", "evt_co", EVENT_CHECKOUT, STORE_EVENT_RECEIVE, ERR_OK,
          STORE_EVENT_APPLIED, "applied", 1 },
        { "failed invoice retried", "evt_inv", EVENT_INVOICE, STORE_EVENT_RECEIVE, ERR_OK,
          STORE_EVENT_APPLIED, "applied", 2 },
        { "duplicate", "evt_inv", EVENT_INVOICE, STORE_EVENT_RECEIVE, ERR_OK, STORE_EVENT_DUPLICATE,
          "applied", 2 },
        { "replay", "evt_inv", EVENT_INVOICE, STORE_EVENT_REPLAY, ERR_OK, STORE_EVENT_APPLIED,
          "applied", 3 },
        { "ignored type", "evt_ign", EVENT_IGNORED, STORE_EVENT_RECEIVE, ERR_OK,
          STORE_EVENT_IGNORED, "ignored", 1 },
        { "ignored duplicate", "evt_ign", EVENT_IGNORED, STORE_EVENT_RECEIVE, ERR_OK,
          STORE_EVENT_DUPLICATE, "ignored", 1 },
        { "subscription via customer", "evt_sub", EVENT_SUBSCRIPTION, STORE_EVENT_RECEIVE, ERR_OK,
          STORE_EVENT_APPLIED, "applied", 1 },
    };
    struct store *st = open_migrated(url);

    for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
        struct billing_event ev = make_event(steps[i].id, steps[i].kind);
        enum store_event_result result = STORE_EVENT_APPLIED;
        str_copy(ev.user_id, sizeof(ev.user_id), "u_ev");
        ev.invoice = make_invoice("in_ev", "", 1700000050);
        ev.has_sub = steps[i].kind == EVENT_SUBSCRIPTION;
        ev.sub = make_sub("sub_ev", "", SUB_STATUS_ACTIVE);
        str_copy(ev.sub.stripe_customer_id, sizeof(ev.sub.stripe_customer_id), "cus_ev");
        T_EQ_I64(record(st, &ev, steps[i].mode, &result), steps[i].want_err, "%s: %s", t->name,
                 steps[i].what);
        T_EQ_I64(result, steps[i].want, "%s: %s: result", t->name, steps[i].what);
        check_event(st, t, steps[i].id, steps[i].want_status, steps[i].want_attempts);
    }
    case_event_inbox_effects(st, t);
    store_close(st);
}

struct deliverer {
    struct store *st;
    int applied;
    int failed;
};

static void *deliver_worker(void *arg)
{
    struct deliverer *d = arg;
    struct billing_event ev = make_event("evt_race", EVENT_CHECKOUT);
    enum store_event_result result = STORE_EVENT_DUPLICATE;

    str_copy(ev.user_id, sizeof(ev.user_id), "u_race");
    if (record(d->st, &ev, STORE_EVENT_RECEIVE, &result) != ERR_OK)
        d->failed++;
    d->applied += result == STORE_EVENT_APPLIED;
    return NULL;
}

/* The same event delivered THREADS times at once is applied once. */
static void case_event_concurrent(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct deliverer d[THREADS];
    pthread_t th[THREADS];
    int applied = 0, failed = 0;

    for (int i = 0; i < THREADS; i++) {
        d[i] = (struct deliverer){ st, 0, 0 };
        if (pthread_create(&th[i], NULL, deliver_worker, &d[i]) != 0)
            exit(1);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        applied += d[i].applied;
        failed += d[i].failed;
    }
    T_EQ_I64(failed, 0, "%s: concurrent deliveries succeed", t->name);
    T_EQ_I64(applied, 1, "%s: applied once", t->name);
    check_event(st, t, "evt_race", "applied", 1);
    store_close(st);
}

/* Idempotent consume */

/* The caller's view of the outcome: what the answer shows besides the decision. */
static struct usage_outcome asked(const char *tier)
{
    struct usage_outcome o = { .limit = 10, .window_start = 86400, .resets_at = 2 * 86400 };

    (void)snprintf(o.tier, sizeof(o.tier), "%s", tier);
    return o;
}

static enum err consume_once(struct store *st, const char *key, const char *hash, int64_t n,
                             const char *tier, struct usage_outcome *o, bool *replayed)
{
    struct usage_grant g = { "u1", "ai_minutes", 86400, n, 10, false, NULL, NULL };
    const struct store_idempotency k = { key, "usage.consume", hash, 1700000000 };

    *o = asked(tier);
    return store_usage_consume_once(st, &g, &k, o, replayed);
}

/* A retry is answered from the stored outcome, whatever the caller's view is now (tier). */
static void case_consume_once(const char *url, const struct target *t)
{
    static const struct {
        const char *what;
        const char *key;
        const char *hash;
        int64_t n;
        const char *tier;
        enum err want_err;
        bool want_replayed;
        bool want_granted;
        int64_t want_used_after, want_remaining;
        const char *want_tier;
        int64_t want_used;
    } steps[] = {
        { "first", "k1", "h1", 4, "free", ERR_OK, false, true, 4, 6, "free", 4 },
        { "retry", "k1", "h1", 4, "plus", ERR_OK, true, true, 4, 6, "free", 4 },
        { "another request", "k1", "h2", 4, "free", ERR_CONFLICT, false, false, 0, 0, "free", 4 },
        { "another key", "k2", "h1", 4, "free", ERR_OK, false, true, 8, 2, "free", 8 },
        { "refused", "k3", "h1", 4, "free", ERR_OK, false, false, 8, 2, "free", 8 },
        { "refusal replayed", "k3", "h1", 4, "premium", ERR_OK, true, false, 8, 2, "free", 8 },
    };
    struct store *st = open_migrated(url);

    for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
        struct usage_outcome o;
        bool replayed = true;
        int64_t used = -1;
        T_EQ_I64(
            consume_once(st, steps[i].key, steps[i].hash, steps[i].n, steps[i].tier, &o, &replayed),
            steps[i].want_err, "%s: %s", t->name, steps[i].what);
        T_EQ_I64(replayed, steps[i].want_replayed, "%s: %s: replayed", t->name, steps[i].what);
        T_EQ_I64(o.granted, steps[i].want_granted, "%s: %s: granted", t->name, steps[i].what);
        T_EQ_I64(o.used, steps[i].want_used_after, "%s: %s: used", t->name, steps[i].what);
        T_EQ_I64(o.remaining, steps[i].want_remaining, "%s: %s: remaining", t->name, steps[i].what);
        T_EQ_I64(o.limit, 10, "%s: %s: limit", t->name, steps[i].what);
        T_EQ_I64(o.window_start, 86400, "%s: %s: window", t->name, steps[i].what);
        T_EQ_I64(o.resets_at, 2 * 86400, "%s: %s: resets_at", t->name, steps[i].what);
        if (steps[i].want_err == ERR_OK)
            T_EQ_STR(o.tier, steps[i].want_tier, "%s: %s: tier", t->name, steps[i].what);
        T_EQ_I64(store_usage_get(st, "u1", "ai_minutes", 86400, &used), ERR_OK, "%s: get", t->name);
        T_EQ_I64(used, steps[i].want_used, "%s: %s: counter", t->name, steps[i].what);
    }
    store_close(st);
}

/* Units given back: never below zero; once per key. */
static void case_usage_refund(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct usage_grant take = { "u_rf", "ai_minutes", 86400, 5, 30, false, NULL, NULL };
    struct usage_grant back = { "u_rf", "ai_minutes", 86400, 3, 30, false, NULL, NULL };
    const struct store_idempotency k = { "rf1", "usage.refund", "h", 1700000000 };
    struct usage_outcome o = asked("free");
    bool granted = false, replayed = true;
    int64_t used = -1;

    T_EQ_I64(store_usage_consume(st, &take, &granted, &used), ERR_OK, "%s: take 5", t->name);
    T_EQ_I64(store_usage_refund(st, &back, &k, &o, &replayed), ERR_OK, "%s: give 3", t->name);
    T_OK(o.granted && o.used == 2 && o.remaining == 8 && !replayed, "%s: 2 used", t->name);
    o = asked("free");
    T_EQ_I64(store_usage_refund(st, &back, &k, &o, &replayed), ERR_OK, "%s: again", t->name);
    T_OK(replayed && o.used == 2, "%s: the same key gives nothing more", t->name);
    back.n = 100;
    o = asked("free");
    T_EQ_I64(store_usage_refund(st, &back, NULL, &o, &replayed), ERR_OK, "%s: give 100", t->name);
    T_EQ_I64(o.used, 0, "%s: never below zero", t->name);
    T_EQ_I64(store_usage_get(st, "u_rf", "ai_minutes", 86400, &used), ERR_OK, "%s: get", t->name);
    T_EQ_I64(used, 0, "%s: stored zero", t->name);
    back.window_start = 2 * 86400;
    o = asked("free");
    T_EQ_I64(store_usage_refund(st, &back, NULL, &o, &replayed), ERR_OK, "%s: empty", t->name);
    T_EQ_I64(o.used, 0, "%s: a window never used stays at zero", t->name);
    store_close(st);
}

/* Records older than the cut are deleted, newer ones kept and still replayed. */
static void case_idempotency_prune(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct usage_grant g = { "u1", "ai_minutes", 86400, 1, -1, false, NULL, NULL };
    struct usage_outcome o;
    bool replayed = false;
    int deleted = -1;
    int64_t used = -1;

    for (int i = 0; i < 5; i++) {
        char key[16];
        const struct store_idempotency k = { key, "usage.consume", "h", 1000 + i };
        (void)snprintf(key, sizeof(key), "old%d", i);
        o = asked("free");
        T_EQ_I64(store_usage_consume_once(st, &g, &k, &o, &replayed), ERR_OK, "%s: %s", t->name,
                 key);
    }
    T_EQ_I64(store_idempotency_prune(st, 1003, &deleted), ERR_OK, "%s: prune", t->name);
    T_EQ_I64(deleted, 3, "%s: the three records before the cut are deleted", t->name);
    T_EQ_I64(store_idempotency_prune(st, 1003, &deleted), ERR_OK, "%s: prune again", t->name);
    T_EQ_I64(deleted, 0, "%s: nothing more to delete", t->name);
    {
        const struct store_idempotency kept = { "old4", "usage.consume", "h", 5000 };
        const struct store_idempotency gone = { "old0", "usage.consume", "h", 5000 };
        o = asked("free");
        T_EQ_I64(store_usage_consume_once(st, &g, &kept, &o, &replayed), ERR_OK, "%s: kept",
                 t->name);
        T_EQ_I64(replayed, true, "%s: a kept key is still replayed", t->name);
        o = asked("free");
        T_EQ_I64(store_usage_consume_once(st, &g, &gone, &o, &replayed), ERR_OK, "%s: gone",
                 t->name);
        T_EQ_I64(replayed, false, "%s: a pruned key is new again", t->name);
    }
    T_EQ_I64(store_usage_get(st, "u1", "ai_minutes", 86400, &used), ERR_OK, "%s: get", t->name);
    T_EQ_I64(used, 6, "%s: five first uses and the pruned key's new one", t->name);
    store_close(st);
}

struct keyed {
    struct store *st;
    int failed;
    int fresh;
};

static void *keyed_worker(void *arg)
{
    struct keyed *k = arg;
    struct usage_outcome o;
    bool replayed = false;

    if (consume_once(k->st, "k_race", "h", 1, "free", &o, &replayed) != ERR_OK || !o.granted ||
        o.used != 1 || o.remaining != 9)
        k->failed++;
    k->fresh += !replayed;
    return NULL;
}

/* One key sent THREADS times at once counts once, and every request gets the same reply. */
static void case_consume_once_concurrent(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct keyed k[THREADS];
    pthread_t th[THREADS];
    int failed = 0, fresh = 0;
    int64_t used = -1;

    for (int i = 0; i < THREADS; i++) {
        k[i] = (struct keyed){ st, 0, 0 };
        if (pthread_create(&th[i], NULL, keyed_worker, &k[i]) != 0)
            exit(1);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        failed += k[i].failed;
        fresh += k[i].fresh;
    }
    T_EQ_I64(failed, 0, "%s: every request got the first reply", t->name);
    T_EQ_I64(fresh, 1, "%s: one request consumed, the others replayed", t->name);
    T_EQ_I64(store_usage_get(st, "u1", "ai_minutes", 86400, &used), ERR_OK, "%s: get", t->name);
    T_EQ_I64(used, 1, "%s: counted once", t->name);
    store_close(st);
}

/* Invoices only move forward, whoever applies them (webhooks, sync). */
static void case_invoice_apply(const char *url, const struct target *t)
{
    static const struct {
        const char *what;
        const char *status;
        int64_t amount_paid;
        bool want_applied;
        const char *want_status;
    } steps[] = {
        { "new draft", "draft", 0, true, "draft" },    { "open", "open", 0, true, "open" },
        { "paid", "paid", 999, true, "paid" },         { "a late open", "open", 0, false, "paid" },
        { "a late draft", "draft", 0, false, "paid" }, { "paid again", "paid", 999, true, "paid" },
    };
    struct store *st = open_migrated(url);
    struct invoice got[2];
    int n = 0;

    for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
        struct invoice inv = make_invoice("in_1", "u1", 100);
        bool applied = !steps[i].want_applied;
        (void)str_copy(inv.status, sizeof(inv.status), steps[i].status);
        inv.amount_paid = steps[i].amount_paid;
        T_EQ_I64(store_invoice_apply(st, &inv, &applied), ERR_OK, "%s: %s", t->name, steps[i].what);
        T_EQ_I64(applied, steps[i].want_applied, "%s: %s: applied", t->name, steps[i].what);
        T_EQ_I64(store_invoice_list(st, "u1", 2, got, &n), ERR_OK, "%s: list", t->name);
        T_OK(n == 1 && strcmp(got[0].status, steps[i].want_status) == 0, "%s: %s: stored %s",
             t->name, steps[i].what, n == 1 ? got[0].status : "nothing");
    }
    {
        struct invoice bad = make_invoice("", "u1", 100);
        bool applied = true;
        T_EQ_I64(store_invoice_apply(st, &bad, &applied), ERR_INVALID, "%s: no id", t->name);
        T_EQ_I64(applied, false, "%s: no id: not applied", t->name);
    }
    store_close(st);
}

/* A link is made once: neither the user nor the Stripe customer is linked twice. */
static void case_customer_link(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct customer a = make_customer("u1", "cus_1"), got;
    struct customer same_user = make_customer("u1", "cus_2");
    struct customer same_cus = make_customer("u2", "cus_1");
    struct customer other = make_customer("u3", "cus_3");
    bool linked = false;

    T_EQ_I64(store_customer_link(st, &a, &linked), ERR_OK, "%s: link", t->name);
    T_EQ_I64(linked, true, "%s: a new link is made", t->name);
    T_EQ_I64(store_customer_link(st, &a, &linked), ERR_OK, "%s: link again", t->name);
    T_EQ_I64(linked, false, "%s: the same link again changes nothing", t->name);
    T_EQ_I64(store_customer_link(st, &same_user, &linked), ERR_OK, "%s: user linked", t->name);
    T_EQ_I64(linked, false, "%s: a linked user keeps its customer", t->name);
    T_EQ_I64(store_customer_link(st, &same_cus, &linked), ERR_OK, "%s: customer linked", t->name);
    T_EQ_I64(linked, false, "%s: a linked customer keeps its user", t->name);
    T_EQ_I64(store_customer_get(st, "u1", &got), ERR_OK, "%s: get u1", t->name);
    T_EQ_STR(got.stripe_customer_id, "cus_1", "%s: u1 still has cus_1", t->name);
    T_EQ_I64(store_customer_get(st, "u2", &got), ERR_NOT_FOUND, "%s: u2 not linked", t->name);
    T_EQ_I64(store_customer_link(st, &other, &linked), ERR_OK, "%s: another", t->name);
    T_EQ_I64(linked, true, "%s: another pair is linked", t->name);
    other.stripe_customer_id[0] = '\0';
    T_EQ_I64(store_customer_link(st, &other, &linked), ERR_INVALID, "%s: no customer id", t->name);
    store_close(st);
}

/* The customer link owns a subscription: an event naming another user changes nothing. */
static void case_event_ownership(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct billing_event ev = make_event("evt_own", EVENT_SUBSCRIPTION);
    struct subscription sub;
    struct webhook_event stored;
    enum store_event_result result;
    bool applied = true;
    char msg[256] = "";
    const struct store_event_in in = { &ev, raw_body, sizeof(raw_body) - 1, STORE_EVENT_RECEIVE,
                                       NULL };

    ev.has_sub = true;
    ev.sub = make_sub("sub_own", "u_own", SUB_STATUS_ACTIVE);
    (void)str_copy(ev.sub.stripe_customer_id, sizeof(ev.sub.stripe_customer_id), "cus_ev");
    T_EQ_I64(record(st, &ev, STORE_EVENT_RECEIVE, &result), ERR_OK, "%s: owner's event", t->name);
    (void)str_copy(ev.id, sizeof(ev.id), "evt_thief");
    (void)str_copy(ev.sub.user_id, sizeof(ev.sub.user_id), "u_thief");
    ev.sub.stripe_updated = ev.created = 1700000200;
    T_EQ_I64(store_event_record_apply(st, &in, &result, msg, sizeof(msg)), ERR_CONFLICT,
             "%s: another user named for a linked customer", t->name);
    T_OK(strstr(msg, "linked to user 'u_own'") != NULL, "%s: says why: %s", t->name, msg);
    T_EQ_I64(store_event_get(st, "evt_thief", &stored), ERR_OK, "%s: recorded", t->name);
    T_EQ_STR(stored.status, "failed", "%s: as failed", t->name);
    T_EQ_I64(store_subscription_get_for_user(st, "u_thief", &sub), ERR_NOT_FOUND,
             "%s: nothing moved to the other user", t->name);
    T_EQ_I64(store_subscription_get_for_user(st, "u_own", &sub), ERR_OK, "%s: owner's", t->name);
    T_EQ_STR(sub.id, "sub_own", "%s: the owner keeps it", t->name);
    sub = make_sub("sub_own", "u_other", SUB_STATUS_ACTIVE);
    sub.stripe_updated = 1700000300;
    T_EQ_I64(store_subscription_apply(st, &sub, &applied), ERR_CONFLICT,
             "%s: a stored subscription never changes hands", t->name);
    T_EQ_I64(applied, false, "%s: not applied", t->name);
    store_close(st);
}

static struct checkout_record make_session(const char *id, const char *user, const char *fp,
                                           int64_t created)
{
    struct checkout_record c = { .trial_days = 7, .status = "open", .created = created };

    (void)str_copy(c.id, sizeof(c.id), id);
    (void)str_copy(c.user_id, sizeof(c.user_id), user);
    (void)str_copy(c.fingerprint, sizeof(c.fingerprint), fp);
    (void)snprintf(c.idem_key, sizeof(c.idem_key), "key-%s", id);
    (void)snprintf(c.url, sizeof(c.url), "https://checkout/%s", id);
    c.expires_at = created + 86400;
    return c;
}

/* One open session per user; the trial held by one checkout; an expired one gives it back. */
static void case_checkout(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct customer cus = make_customer("u_co", "cus_co");
    struct checkout_record a = make_session("cs_a", "u_co", "fp1", 1000), got, other;
    struct checkout_record b = make_session("cs_b", "u_co", "fp2", 1001);
    struct checkout_record late = make_session("cs_c", "u_co", "fp3", 1000 + 86400 + 5);
    bool reserved = false, closed = false;

    T_EQ_I64(store_checkout_latest(st, "u_co", &got), ERR_NOT_FOUND, "%s: none yet", t->name);
    T_EQ_I64(store_trial_reserve(st, "u_co", "key-cs_a", 1000, &reserved), ERR_NOT_FOUND,
             "%s: no customer, no trial", t->name);
    T_EQ_I64(store_customer_insert(st, &cus), ERR_OK, "%s: customer", t->name);
    T_EQ_I64(store_trial_reserve(st, "u_co", "key-cs_a", 1000, &reserved), ERR_OK, "%s: reserve",
             t->name);
    T_EQ_I64(reserved, true, "%s: the first checkout holds the trial", t->name);
    T_EQ_I64(store_trial_reserve(st, "u_co", "key-cs_a", 1001, &reserved), ERR_OK, "%s: again",
             t->name);
    T_EQ_I64(reserved, true, "%s: its retry too", t->name);
    T_EQ_I64(store_trial_reserve(st, "u_co", "key-cs_b", 1002, &reserved), ERR_OK, "%s: other",
             t->name);
    T_EQ_I64(reserved, false, "%s: another checkout does not", t->name);
    T_EQ_I64(store_checkout_open(st, &a, &other), ERR_OK, "%s: open a", t->name);
    T_EQ_I64(store_checkout_open(st, &b, &other), ERR_CONFLICT, "%s: a second open", t->name);
    T_EQ_STR(other.id, "cs_a", "%s: the open one is named", t->name);
    T_EQ_I64(store_checkout_open(st, &a, &other), ERR_CONFLICT, "%s: the same twice", t->name);
    T_EQ_I64(store_checkout_latest(st, "u_co", &got), ERR_OK, "%s: latest", t->name);
    T_EQ_STR(got.id, "cs_a", "%s: the open one", t->name);
    T_EQ_STR(got.fingerprint, "fp1", "%s: with its ask", t->name);
    T_EQ_I64(store_checkout_close(st, "cs_a", "expired", &closed), ERR_OK, "%s: expire", t->name);
    T_EQ_I64(closed, true, "%s: closed", t->name);
    T_EQ_I64(store_checkout_close(st, "cs_a", "complete", &closed), ERR_OK, "%s: again", t->name);
    T_EQ_I64(closed, false, "%s: a closed session stays as it is", t->name);
    T_EQ_I64(store_trial_reserve(st, "u_co", "key-cs_b", 1003, &reserved), ERR_OK, "%s: b",
             t->name);
    T_EQ_I64(reserved, true, "%s: an expired session gives the trial back", t->name);
    T_EQ_I64(store_checkout_open(st, &b, &other), ERR_OK, "%s: open b", t->name);
    T_EQ_I64(store_checkout_open(st, &late, &other), ERR_OK,
             "%s: b is past its expires_at: another may open", t->name);
    T_EQ_I64(store_checkout_latest(st, "u_co", &got), ERR_OK, "%s: latest", t->name);
    T_EQ_STR(got.id, "cs_c", "%s: the new open one", t->name);
    T_EQ_I64(store_checkout_close(st, "cs_b", "complete", &closed), ERR_OK, "%s: b", t->name);
    T_EQ_I64(closed, false, "%s: b was expired for being late", t->name);
    T_EQ_I64(store_checkout_close(st, "cs_c", "paid", &closed), ERR_INVALID, "%s: bad status",
             t->name);
    store_close(st);
}

/* A second live subscription of a user is recorded once; the older one is kept. */
static void case_duplicates(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct subscription older = make_sub("sub_old", "u_dup", SUB_STATUS_ACTIVE);
    struct subscription newer = make_sub("sub_new", "u_dup", SUB_STATUS_ACTIVE);
    struct duplicate_record d[4];
    bool applied = false;
    int n = -1;

    older.created = 100;
    newer.created = 200;
    T_EQ_I64(store_subscription_apply(st, &newer, &applied), ERR_OK, "%s: newer first", t->name);
    T_EQ_I64(store_duplicate_list(st, true, 4, d, &n), ERR_OK, "%s: list", t->name);
    T_EQ_I64(n, 0, "%s: one live: no duplicate", t->name);
    T_EQ_I64(store_subscription_apply(st, &older, &applied), ERR_OK, "%s: older", t->name);
    T_EQ_I64(store_subscription_apply(st, &older, &applied), ERR_OK, "%s: again", t->name);
    T_EQ_I64(store_duplicate_list(st, true, 4, d, &n), ERR_OK, "%s: list", t->name);
    T_EQ_I64(n, 1, "%s: one duplicate, once", t->name);
    T_EQ_STR(d[0].id, "sub_new", "%s: the newer is the duplicate", t->name);
    T_EQ_STR(d[0].kept_id, "sub_old", "%s: the older is kept", t->name);
    T_EQ_STR(d[0].status, "pending", "%s: pending", t->name);
    (void)str_copy(d[0].status, sizeof(d[0].status), "resolved");
    d[0].refunded = 999;
    d[0].attempts = 1;
    T_EQ_I64(store_duplicate_update(st, &d[0]), ERR_OK, "%s: resolve", t->name);
    T_EQ_I64(store_duplicate_list(st, true, 4, d, &n), ERR_OK, "%s: pending", t->name);
    T_EQ_I64(n, 0, "%s: none pending", t->name);
    T_EQ_I64(store_duplicate_list(st, false, 4, d, &n), ERR_OK, "%s: all", t->name);
    T_OK(n == 1 && d[0].refunded == 999 && !strcmp(d[0].status, "resolved"), "%s: recorded",
         t->name);
    store_close(st);
}

/*
 * store_duplicate_pending_any: "none" is kept for a second, but never past a duplicate this
 * process records; another process's shows within the second.
 */
static void case_duplicates_pending_any(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url), *other = open_migrated(url);
    struct subscription a1 = make_sub("sub_pa1", "u_pa", SUB_STATUS_ACTIVE);
    struct subscription a2 = make_sub("sub_pa2", "u_pa", SUB_STATUS_ACTIVE);
    struct subscription b1 = make_sub("sub_pb1", "u_pb", SUB_STATUS_ACTIVE);
    struct subscription b2 = make_sub("sub_pb2", "u_pb", SUB_STATUS_ACTIVE);
    struct duplicate_record d[4];
    bool applied = false, any = true;
    int n = 0;

    a1.created = b1.created = 100;
    a2.created = b2.created = 200;
    T_OK(store_duplicate_pending_any(st, &any) == ERR_OK && !any, "%s: none pending", t->name);
    T_OK(store_subscription_apply(st, &a1, &applied) == ERR_OK &&
             store_subscription_apply(st, &a2, &applied) == ERR_OK,
         "%s: a second live subscription, written here", t->name);
    T_OK(store_duplicate_pending_any(st, &any) == ERR_OK && any,
         "%s: seen at once, though none was a moment ago", t->name);
    T_OK(store_duplicate_list(st, true, 4, d, &n) == ERR_OK && n == 1, "%s: one", t->name);
    (void)str_copy(d[0].status, sizeof(d[0].status), "resolved");
    T_EQ_I64(store_duplicate_update(st, &d[0]), ERR_OK, "%s: resolved", t->name);
    T_OK(store_duplicate_pending_any(st, &any) == ERR_OK && !any, "%s: none again", t->name);
    T_OK(store_subscription_apply(other, &b1, &applied) == ERR_OK &&
             store_subscription_apply(other, &b2, &applied) == ERR_OK,
         "%s: another process records one", t->name);
    T_OK(store_duplicate_pending_any(st, &any) == ERR_OK && !any,
         "%s: within the second, this one still says none (no read)", t->name);
    usleep(1100 * 1000);
    T_OK(store_duplicate_pending_any(st, &any) == ERR_OK && any, "%s: and sees it after it",
         t->name);
    store_close(other);
    store_close(st);
}

/* Group commit: many writers at once, some refused or failing, in shared batches */

#define GROUP_THREADS 32
#define GROUP_ROUNDS  20
#define GROUP_KEYS    16
#define GROUP_USERS   10
#define GROUP_EVENTS  40

struct group_worker {
    struct store *st;
    int id;
    int quota_granted, quota_refused; /* consumes against a limit of 100 */
    int free_granted;                 /* consumes far below their limit */
    int inserted[GROUP_USERS];        /* customer inserts that succeeded, by user */
    int fresh[GROUP_KEYS];            /* keyed consumes that consumed, by key */
    int conflicts, replays, wrong;    /* wrong: any other result */
    int first[GROUP_EVENTS];          /* webhook deliveries that recorded the event */
    int duplicates;                   /* and those told it was a duplicate */
    void *(*fn)(void *);              /* what it runs */
};

/* One write of round r: a consume (refused past the limit), an insert (a conflict but once), a
 * keyed consume (replayed, or a conflict for the other hash), a consume always granted. */
static void group_write(struct group_worker *w, int r)
{
    int m = w->id * GROUP_ROUNDS + r;
    struct usage_grant limited = { "gq", "ai_minutes", 86400, 1, 100, false, NULL, NULL };
    struct usage_grant free_g = { "gb", "ai_minutes", 86400, 1, 100000, false, NULL, NULL };
    bool granted = false, replayed = false;
    int64_t used = 0;
    enum err err;

    switch ((w->id + r) % 4) {
    case 0:
        err = store_usage_consume(w->st, &limited, &granted, &used);
        w->wrong += err != ERR_OK || used > 100 || (granted && used < 1);
        w->quota_granted += err == ERR_OK && granted;
        w->quota_refused += err == ERR_OK && !granted;
        return;
    case 1: {
        char user[16], cus[16];
        (void)snprintf(user, sizeof(user), "gu%d", m % GROUP_USERS);
        (void)snprintf(cus, sizeof(cus), "cus_g%d", m % GROUP_USERS);
        struct customer c = make_customer(user, cus);
        err = store_customer_insert(w->st, &c);
        w->inserted[m % GROUP_USERS] += err == ERR_OK;
        w->conflicts += err == ERR_CONFLICT;
        w->wrong += err != ERR_OK && err != ERR_CONFLICT;
        return;
    }
    case 2: {
        char key[16];
        struct usage_grant g = { "gk", "ai_minutes", 86400, 1, 1000, false, NULL, NULL };
        const struct store_idempotency k = { key, "usage.consume", w->id % 2 ? "h1" : "h2",
                                             1700000000 };
        struct usage_outcome o = asked("free");
        (void)snprintf(key, sizeof(key), "gk%d", m % GROUP_KEYS);
        o.limit = 1000;
        err = store_usage_consume_once(w->st, &g, &k, &o, &replayed);
        w->fresh[m % GROUP_KEYS] += err == ERR_OK && !replayed;
        w->replays += err == ERR_OK && replayed;
        w->conflicts += err == ERR_CONFLICT;
        w->wrong += (err != ERR_OK && err != ERR_CONFLICT) || (err == ERR_OK && !o.granted);
        return;
    }
    default:
        err = store_usage_consume(w->st, &free_g, &granted, &used);
        w->wrong += err != ERR_OK || !granted;
        w->free_granted += err == ERR_OK && granted;
        return;
    }
}

static void *group_main(void *arg)
{
    struct group_worker *w = arg;

    for (int r = 0; r < GROUP_ROUNDS; r++)
        group_write(w, r);
    return NULL;
}

/* The workers a thread runs as fibers of its own, at once. */
struct fiber_group {
    struct group_worker *w;
    int n;
    void *(*fn)(void *);
};

static void fiber_group_job(void *arg)
{
    struct group_worker *w = arg;

    w->fn(w);
}

static void *fiber_group_main(void *arg)
{
    struct fiber_group *fg = arg;
    struct fiber_sched *s = fiber_sched_new(fg->n, 512 * 1024);

    if (!s) {
        printf("Bail out! fiber_sched_new\n");
        exit(1);
    }
    for (int i = 0; i < fg->n; i++)
        if (!fiber_sched_start(s, fiber_group_job, &fg->w[i])) {
            printf("Bail out! fiber_sched_start\n");
            exit(1);
        }
    fiber_sched_settle(s);
    fiber_sched_free(s);
    return NULL;
}

/*
 * GROUP_THREADS workers of fn, all finished before it returns: the first fibers of them as
 * fibers of one thread (the write pool's way on SQLite), the rest as threads of their own.
 */
static void group_start_fibers(struct store *st, struct group_worker *w, pthread_t *th,
                               void *(*fn)(void *), int fibers)
{
    struct fiber_group fg = { w, fibers, fn };
    pthread_t fiber_thread;

    for (int i = 0; i < GROUP_THREADS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].st = st;
        w[i].id = i;
        w[i].fn = fn;
    }
    if (fibers > 0 && pthread_create(&fiber_thread, NULL, fiber_group_main, &fg) != 0) {
        printf("Bail out! pthread_create\n");
        exit(1);
    }
    for (int i = fibers; i < GROUP_THREADS; i++) {
        if (pthread_create(&th[i], NULL, fn, &w[i]) != 0) {
            printf("Bail out! pthread_create\n");
            exit(1);
        }
    }
    for (int i = fibers; i < GROUP_THREADS; i++)
        pthread_join(th[i], NULL);
    if (fibers > 0)
        pthread_join(fiber_thread, NULL);
}

/* GROUP_THREADS threads of fn, each with its worker, all joined before it returns. */
static void group_start(struct store *st, struct group_worker *w, pthread_t *th,
                        void *(*fn)(void *))
{
    group_start_fibers(st, w, th, fn, 0);
}

static int64_t group_used(struct store *st, const char *user)
{
    int64_t used = -1;

    if (store_usage_get(st, user, "ai_minutes", 86400, &used) != ERR_OK)
        return -1;
    return used;
}

/*
 * GROUP_THREADS threads write at once: each write gets its own result, whatever else shares its
 * batch, and the database holds exactly the writes that succeeded. On PostgreSQL the first
 * statements of a batch's single-statement writes go in one pipeline; with skew, each write is
 * handed another's result, which the batch must notice (and then run them again, isolated)
 * instead of acknowledging a result that is not its own or committing a statement twice.
 */
static void group_commit_check(const char *url, const struct target *t, bool skew, int fibers)
{
    struct store *st = open_migrated(url);
    const char *name = fibers == GROUP_THREADS ? "group (fibers)"
                       : fibers                ? "group (fibers and threads)"
                       : skew                  ? "group (skewed pipelines)"
                                               : "group";
    struct group_worker w[GROUP_THREADS];
    pthread_t th[GROUP_THREADS];
    struct group_worker sum = { 0 };
    struct store_group_stats before, after;
    int inserted_once = 0, fresh_once = 0;
    const int per_kind = GROUP_THREADS * GROUP_ROUNDS / 4;

    /* Commits as slow as a disk's: a memory database's take microseconds, and threads could
     * then go through one at a time; batches must form then, whatever the machine's load. */
    store_group_slow_commits(st, 1000);
    store_group_skew_pipelines(st, skew ? 1000000 : 0);
    store_group_stats_get(st, &before);
    group_start_fibers(st, w, th, group_main, fibers);
    store_group_stats_get(st, &after);
    store_group_slow_commits(st, 0);
    store_group_skew_pipelines(st, 0);
    for (int i = 0; i < GROUP_THREADS; i++) {
        sum.quota_granted += w[i].quota_granted;
        sum.quota_refused += w[i].quota_refused;
        sum.free_granted += w[i].free_granted;
        sum.conflicts += w[i].conflicts;
        sum.replays += w[i].replays;
        sum.wrong += w[i].wrong;
        for (int j = 0; j < GROUP_USERS; j++)
            sum.inserted[j] += w[i].inserted[j];
        for (int j = 0; j < GROUP_KEYS; j++)
            sum.fresh[j] += w[i].fresh[j];
    }
    for (int j = 0; j < GROUP_USERS; j++) {
        char user[16];
        struct customer c;
        (void)snprintf(user, sizeof(user), "gu%d", j);
        inserted_once += sum.inserted[j] == 1 && store_customer_get(st, user, &c) == ERR_OK;
    }
    for (int j = 0; j < GROUP_KEYS; j++)
        fresh_once += sum.fresh[j] == 1;
    T_EQ_I64(sum.wrong, 0, "%s: %s: every write got its own right answer", t->name, name);
    T_EQ_I64(sum.quota_granted, 100, "%s: %s: the limit granted exactly", t->name, name);
    T_EQ_I64(sum.quota_refused, per_kind - 100, "%s: %s: the rest refused", t->name, name);
    T_EQ_I64(group_used(st, "gq"), 100, "%s: %s: the limited counter", t->name, name);
    T_EQ_I64(sum.free_granted, per_kind, "%s: %s: every free consume granted", t->name, name);
    T_EQ_I64(group_used(st, "gb"), per_kind, "%s: %s: the free counter", t->name, name);
    T_EQ_I64(inserted_once, GROUP_USERS, "%s: %s: each customer inserted once", t->name, name);
    T_EQ_I64(fresh_once, GROUP_KEYS, "%s: %s: each key consumed once", t->name, name);
    T_EQ_I64(group_used(st, "gk"), GROUP_KEYS, "%s: %s: the keyed counter", t->name, name);
    T_EQ_I64(sum.conflicts + sum.replays + GROUP_USERS + GROUP_KEYS, 2 * per_kind,
             "%s: %s: the other inserts and keys conflicted or replayed", t->name, name);
    T_EQ_I64((int64_t)(after.units - before.units), 4 * per_kind, "%s: %s: writes counted", t->name,
             name);
    T_OK(after.commits - before.commits < after.units - before.units,
         "%s: %s: batches formed: %llu commits for %llu writes", t->name, name,
         (unsigned long long)(after.commits - before.commits),
         (unsigned long long)(after.units - before.units));
    if (strcmp(t->backend, "postgres") == 0)
        T_OK(after.pipelined - before.pipelined > 0, "%s: %s: first statements pipelined: %llu",
             t->name, name, (unsigned long long)(after.pipelined - before.pipelined));
    else
        T_EQ_I64((int64_t)(after.pipelined - before.pipelined), 0,
                 "%s: %s: nothing pipelined (the engine has no pipeline)", t->name, name);
    store_close(st);
}

static void case_group_commit(const char *url, const struct target *t)
{
    group_commit_check(url, t, false, 0);
}

static void case_group_commit_skewed(const char *url, const struct target *t)
{
    group_commit_check(url, t, true, 0);
}

/* Fibers of one thread (the write pool on SQLite) and threads writing at once. */
static void case_group_commit_fibers(const char *url, const struct target *t)
{
    group_commit_check(url, t, false, GROUP_THREADS / 2);
}

/* Fibers only: their writes wait for one another, so they share batches. */
static void case_group_commit_fibers_only(const char *url, const struct target *t)
{
    group_commit_check(url, t, false, GROUP_THREADS);
}

/*
 * Away runs (store_away_set): reads made on a fiber are handed to the submitter, and the fiber's
 * thread goes on meanwhile. The submitter runs each job on a thread of its own; it holds the
 * first (fiber 0's read) until the other fibers' consumes have all returned, or 10 s.
 */
#define AWAY_FIBERS 8

struct away_test {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int submitted;
    int consumed; /* the other fibers' consumes that returned */
    bool writes_seen;
    int64_t used_read; /* what fiber 0's read found */
    int errors;
};

struct away_job {
    struct away_test *at;
    void (*fn)(void *arg);
    void *arg;
    bool hold;
};

static void *away_job_main(void *arg)
{
    struct away_job *j = arg;
    struct away_test *at = j->at;

    if (j->hold) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        pthread_mutex_lock(&at->mu);
        while (at->consumed < AWAY_FIBERS - 1 &&
               pthread_cond_timedwait(&at->cond, &at->mu, &until) == 0)
            ;
        at->writes_seen = at->consumed == AWAY_FIBERS - 1;
        pthread_mutex_unlock(&at->mu);
    }
    j->fn(j->arg);
    free(j);
    return NULL;
}

static bool away_submit(void *ctx, void (*fn)(void *arg), void *arg)
{
    struct away_test *at = ctx;
    struct away_job *j = malloc(sizeof(*j));
    pthread_t th;

    if (!j)
        return false;
    *j = (struct away_job){ at, fn, arg, false };
    pthread_mutex_lock(&at->mu);
    j->hold = at->submitted++ == 0;
    pthread_mutex_unlock(&at->mu);
    if (pthread_create(&th, NULL, away_job_main, j) != 0) {
        free(j);
        return false;
    }
    (void)pthread_detach(th);
    return true;
}

struct away_fiber {
    struct store *st;
    struct away_test *at;
    int id;
};

static bool away_better(const struct grant_record *a, const struct grant_record *b, const void *ctx)
{
    (void)ctx;
    return strcmp(a->id, b->id) < 0;
}

static void away_fiber_main(void *arg);

/* The fibers of case_away_reads, on a thread of their own (the test waits for it, 30 s at most). */
struct away_run_all {
    struct away_fiber *f;
    bool done;
};

static void *away_thread_main(void *arg)
{
    struct away_run_all *r = arg;
    struct fiber_sched *s = fiber_sched_new(AWAY_FIBERS, 512 * 1024);

    for (int i = 0; i < AWAY_FIBERS; i++) {
        if (!s || !fiber_sched_start(s, away_fiber_main, &r->f[i])) {
            printf("Bail out! fiber_sched_start\n");
            exit(1);
        }
    }
    fiber_sched_settle(s);
    fiber_sched_free(s);
    __atomic_store_n(&r->done, true, __ATOMIC_RELEASE);
    return NULL;
}

static void away_fiber_main(void *arg)
{
    struct away_fiber *f = arg;
    struct away_test *at = f->at;
    struct usage_grant g = { "aw", "ai_minutes", 86400, 1, 1000, false, NULL, NULL };
    struct grant_query q = { .user_id = "aw_granted", .now = 1700000100, .better = away_better };
    bool granted = false;
    int64_t used = -1;

    if (f->id == 0) { /* a read, first of all: held away until the others' writes are done */
        at->errors += store_usage_get(f->st, "aw", "ai_minutes", 86400, &used) != ERR_OK;
        at->used_read = used;
        return;
    }
    /* the grants snapshot, read again (ttl 0) by each: a mutex held over the away read would
     * stop the next fiber, and with it the thread the away one is to run on again */
    at->errors += store_grant_best(f->st, 0, &q) != ERR_OK || !q.found;
    at->errors += store_usage_consume(f->st, &g, &granted, &used) != ERR_OK || !granted;
    pthread_mutex_lock(&at->mu);
    at->consumed++;
    pthread_cond_broadcast(&at->cond);
    pthread_mutex_unlock(&at->mu);
}

static void case_away_reads(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct away_test at = { .used_read = -1 };
    struct away_fiber f[AWAY_FIBERS];
    struct away_run_all run = { f, false };
    struct grant_record grant = { .id = "grant_aw",
                                  .user_id = "aw_granted",
                                  .tier = "premium",
                                  .starts_at = 1700000000,
                                  .ends_at = 0 };
    pthread_t th;
    int64_t used = -1;

    pthread_mutex_init(&at.mu, NULL);
    pthread_cond_init(&at.cond, NULL);
    grant.created_at = 1700000000;
    T_OK(store_grant_insert(st, &grant) == ERR_OK, "%s: away: a grant in force", t->name);
    store_away_set(st, away_submit, &at);
    for (int i = 0; i < AWAY_FIBERS; i++)
        f[i] = (struct away_fiber){ st, &at, i };
    if (pthread_create(&th, NULL, away_thread_main, &run) != 0) {
        printf("Bail out! pthread_create\n");
        exit(1);
    }
    for (int ms = 0; ms < 30000 && !__atomic_load_n(&run.done, __ATOMIC_ACQUIRE); ms += 10)
        usleep(10000);
    if (!__atomic_load_n(&run.done, __ATOMIC_ACQUIRE)) {
        printf("not ok - %s: away: the fibers' thread is stuck after 30 s\nBail out!\n", t->name);
        exit(1);
    }
    pthread_join(th, NULL);
    T_EQ_I64(at.errors, 0, "%s: away: every read and write succeeded", t->name);
    T_OK(at.submitted >= 1, "%s: away: the fiber's read was handed away (%d runs)", t->name,
         at.submitted);
    T_OK(at.writes_seen, "%s: away: the other fibers' writes committed while it was away", t->name);
    T_EQ_I64(at.used_read, AWAY_FIBERS - 1, "%s: away: the read ran there, after them", t->name);
    store_away_set(st, NULL, NULL);
    T_OK(store_usage_get(st, "aw", "ai_minutes", 86400, &used) == ERR_OK && used == AWAY_FIBERS - 1,
         "%s: away: the counter holds each write once", t->name);
    pthread_cond_destroy(&at.cond);
    pthread_mutex_destroy(&at.mu);
    store_close(st);
}

/* Consumes only (no conflict to end a pipeline early), every result handed to the wrong write. */
static void *skew_main(void *arg)
{
    struct group_worker *w = arg;
    struct usage_grant limited = { "sq", "ai_minutes", 86400, 1, 100, false, NULL, NULL };
    struct usage_grant free_g = { "sb", "ai_minutes", 86400, 1, 100000, false, NULL, NULL };

    for (int r = 0; r < GROUP_ROUNDS; r++) {
        const bool lim = (w->id + r) % 2 == 0;
        bool granted = false;
        int64_t used = 0;
        enum err err = store_usage_consume(w->st, lim ? &limited : &free_g, &granted, &used);
        w->wrong +=
            err != ERR_OK || (lim && used > 100) || (granted && used < 1) || (!lim && !granted);
        w->quota_granted += err == ERR_OK && lim && granted;
        w->quota_refused += err == ERR_OK && lim && !granted;
        w->free_granted += err == ERR_OK && !lim && granted;
    }
    return NULL;
}

static void case_group_pipeline_skewed(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct group_worker w[GROUP_THREADS];
    pthread_t th[GROUP_THREADS];
    struct group_worker sum = { 0 };
    struct store_group_stats before, after;
    const int per_kind = GROUP_THREADS * GROUP_ROUNDS / 2;

    store_group_slow_commits(st, 1000);
    store_group_skew_pipelines(st, 1000000);
    store_group_stats_get(st, &before);
    group_start(st, w, th, skew_main);
    for (int i = 0; i < GROUP_THREADS; i++) {
        sum.quota_granted += w[i].quota_granted;
        sum.quota_refused += w[i].quota_refused;
        sum.free_granted += w[i].free_granted;
        sum.wrong += w[i].wrong;
    }
    store_group_stats_get(st, &after);
    store_group_slow_commits(st, 0);
    store_group_skew_pipelines(st, 0);
    T_EQ_I64(sum.wrong, 0, "%s: skewed: every consume got its own right answer", t->name);
    T_EQ_I64(sum.quota_granted, 100, "%s: skewed: the limit granted exactly", t->name);
    T_EQ_I64(sum.quota_refused, per_kind - 100, "%s: skewed: the rest refused", t->name);
    T_EQ_I64(group_used(st, "sq"), 100, "%s: skewed: the limited counter", t->name);
    T_EQ_I64(sum.free_granted, per_kind, "%s: skewed: every free consume granted", t->name);
    T_EQ_I64(group_used(st, "sb"), per_kind, "%s: skewed: the free counter, each once", t->name);
    if (strcmp(t->backend, "postgres") == 0)
        T_OK(after.pipelined - before.pipelined > 0, "%s: skewed: pipelined: %llu", t->name,
             (unsigned long long)(after.pipelined - before.pipelined));
    store_close(st);
}

/* Webhook deliveries in batches: GROUP_EVENTS ids, each delivered by several threads at once. */

static void *event_main(void *arg)
{
    struct group_worker *w = arg;

    for (int r = 0; r < GROUP_ROUNDS; r++) {
        const int e = (w->id * GROUP_ROUNDS + r) % GROUP_EVENTS;
        char id[32];
        struct billing_event ev;
        enum store_event_result result = STORE_EVENT_DUPLICATE;
        enum err err;

        (void)snprintf(id, sizeof(id), "evt_group_%d", e);
        ev = make_event(id, EVENT_IGNORED);
        err = record(w->st, &ev, STORE_EVENT_RECEIVE, &result);
        w->first[e] += err == ERR_OK && result == STORE_EVENT_IGNORED;
        w->duplicates += err == ERR_OK && result == STORE_EVENT_DUPLICATE;
        w->wrong +=
            err != ERR_OK || (result != STORE_EVENT_IGNORED && result != STORE_EVENT_DUPLICATE);
    }
    return NULL;
}

/*
 * Each event is recorded once, by exactly one of its deliveries, and the others are told it is
 * a duplicate, however the batches mix them; on PostgreSQL their claims go in the pipeline,
 * and with skew each delivery is handed another's claim.
 */
static void group_events_check(const char *url, const struct target *t, bool skew)
{
    struct store *st = open_migrated(url);
    const char *name = skew ? "group events (skewed pipelines)" : "group events";
    struct group_worker w[GROUP_THREADS];
    pthread_t th[GROUP_THREADS];
    struct store_group_stats before, after;
    int recorded_once = 0, duplicates = 0, wrong = 0;

    store_group_slow_commits(st, 1000);
    store_group_skew_pipelines(st, skew ? 1000000 : 0);
    store_group_stats_get(st, &before);
    group_start(st, w, th, event_main);
    store_group_stats_get(st, &after);
    store_group_slow_commits(st, 0);
    store_group_skew_pipelines(st, 0);
    for (int e = 0; e < GROUP_EVENTS; e++) {
        int firsts = 0;
        char id[32];
        struct webhook_event row;
        for (int i = 0; i < GROUP_THREADS; i++)
            firsts += w[i].first[e];
        (void)snprintf(id, sizeof(id), "evt_group_%d", e);
        recorded_once += firsts == 1 && store_event_get(st, id, &row) == ERR_OK &&
                         strcmp(row.status, "ignored") == 0 && row.attempts == 1;
    }
    for (int i = 0; i < GROUP_THREADS; i++) {
        duplicates += w[i].duplicates;
        wrong += w[i].wrong;
    }
    T_EQ_I64(wrong, 0, "%s: %s: every delivery answered", t->name, name);
    T_EQ_I64(recorded_once, GROUP_EVENTS, "%s: %s: each event recorded once, by one delivery",
             t->name, name);
    T_EQ_I64(duplicates, GROUP_THREADS * GROUP_ROUNDS - GROUP_EVENTS,
             "%s: %s: the other deliveries are duplicates", t->name, name);
    if (strcmp(t->backend, "postgres") == 0)
        T_OK(after.pipelined - before.pipelined > 0, "%s: %s: claims pipelined: %llu", t->name,
             name, (unsigned long long)(after.pipelined - before.pipelined));
    store_close(st);
}

static void case_group_events(const char *url, const struct target *t)
{
    group_events_check(url, t, false);
}

static void case_group_events_skewed(const char *url, const struct target *t)
{
    group_events_check(url, t, true);
}

/* A batch whose COMMIT fails acknowledges none of its writes, and stores none. */
static void case_group_commit_fails(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct group_worker w[GROUP_THREADS];
    pthread_t th[GROUP_THREADS];
    int acknowledged = 0, wrong = 0;

    store_group_fail_commits(st, 1000000);
    group_start(st, w, th, group_main);
    for (int i = 0; i < GROUP_THREADS; i++) {
        acknowledged += w[i].quota_granted + w[i].quota_refused + w[i].free_granted + w[i].replays;
        for (int j = 0; j < GROUP_USERS; j++)
            acknowledged += w[i].inserted[j];
        for (int j = 0; j < GROUP_KEYS; j++)
            acknowledged += w[i].fresh[j];
        wrong += w[i].wrong;
    }
    store_group_fail_commits(st, 0);
    T_EQ_I64(acknowledged, 0, "%s: failed commits: no write acknowledged", t->name);
    T_OK(wrong > 0, "%s: failed commits: every write failed (%d)", t->name, wrong);
    T_EQ_I64(group_used(st, "gq"), 0, "%s: failed commits: no counter stored", t->name);
    T_EQ_I64(group_used(st, "gb"), 0, "%s: failed commits: no free counter stored", t->name);
    T_EQ_I64(group_used(st, "gk"), 0, "%s: failed commits: no keyed counter stored", t->name);
    {
        struct customer c;
        T_EQ_I64(store_customer_get(st, "gu0", &c), ERR_NOT_FOUND,
                 "%s: failed commits: no customer stored", t->name);
    }
    {
        struct usage_grant g = { "gq", "ai_minutes", 86400, 1, 100, false, NULL, NULL };
        bool granted = false;
        int64_t used = 0;
        T_EQ_I64(store_usage_consume(st, &g, &granted, &used), ERR_OK,
                 "%s: failed commits: a write after works", t->name);
        T_EQ_I64(used, 1, "%s: failed commits: and is the first", t->name);
    }
    store_close(st);
}

static struct schedule_record make_sched(const char *status, int64_t updated, const char *next)
{
    struct schedule_record s;

    memset(&s, 0, sizeof(s));
    str_copy(s.id, sizeof(s.id), "sub_sched_1");
    str_copy(s.subscription_id, sizeof(s.subscription_id), "sub_plan");
    str_copy(s.status, sizeof(s.status), status);
    str_copy(s.next_price_id, sizeof(s.next_price_id), next);
    s.next_at = next[0] ? 1702592000 : 0;
    s.stripe_updated = updated;
    return s;
}

/*
 * Plan changes (issue #14): a subscription keeps its schedule and pending update; schedules apply
 * in Stripe's order from events in any order; an event of the same second as a different stored
 * state says so (same_second), a redelivered one does not.
 */
static void case_plan_changes(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct subscription s = make_sub("sub_plan", "u_plan", SUB_STATUS_ACTIVE), got;
    struct schedule_record sched = make_sched("active", 100, "price_next"), sgot;
    struct billing_event ev = make_event("evt_sched_released", EVENT_SCHEDULE);
    struct customer c = { .user_id = "u_plan", .stripe_customer_id = "cus_plan", .created = 1 };
    enum store_event_result result;
    bool applied = false, same = true;
    const struct store_event_in in = { &ev, raw_body, sizeof(raw_body) - 1, STORE_EVENT_RECEIVE,
                                       &same };
    char msg[256] = "";

    str_copy(s.schedule_id, sizeof(s.schedule_id), "sub_sched_1");
    str_copy(s.pending_price_id, sizeof(s.pending_price_id), "price_up");
    str_copy(s.latest_invoice, sizeof(s.latest_invoice), "in_pending");
    s.pending_expires_at = 1700082800;
    s.past_due_since = 0;
    T_EQ_I64(store_subscription_apply(st, &s, &applied), ERR_OK, "%s: a plan in flight", t->name);
    T_EQ_I64(store_subscription_get(st, "sub_plan", &got), ERR_OK, "%s: read back", t->name);
    T_OK(subscription_eq(&got, &s), "%s: schedule and pending update round trip", t->name);
    T_EQ_I64(store_schedule_get(st, "sub_sched_1", &sgot), ERR_NOT_FOUND, "%s: no schedule yet",
             t->name);
    T_EQ_I64(store_schedule_apply(st, &sched, &applied), ERR_OK, "%s: a schedule", t->name);
    T_OK(applied, "%s: stored", t->name);
    T_EQ_I64(store_schedule_get(st, "sub_sched_1", &sgot), ERR_OK, "%s: read it", t->name);
    T_EQ_STR(sgot.next_price_id, "price_next", "%s: its next price", t->name);
    T_EQ_I64(sgot.next_at, 1702592000, "%s: and when", t->name);
    sched = make_sched("active", 90, "price_other");
    T_EQ_I64(store_schedule_apply(st, &sched, &applied), ERR_OK, "%s: an older state", t->name);
    T_OK(!applied, "%s: is not stored", t->name);
    T_EQ_I64(store_customer_insert(st, &c), ERR_OK, "%s: the customer", t->name);
    ev.schedule = make_sched("released", 95, "");
    str_copy(ev.type, sizeof(ev.type), "subscription_schedule.released");
    T_EQ_I64(store_event_record_apply(st, &in, &result, msg, sizeof(msg)), ERR_OK,
             "%s: a release event (%s)", t->name, msg);
    T_OK(!same, "%s: a schedule event says nothing of the subscription", t->name);
    T_EQ_I64(store_schedule_get(st, "sub_sched_1", &sgot), ERR_OK, "%s: read again", t->name);
    T_EQ_STR(sgot.status, "released", "%s: an end beats a later live state", t->name);
    sched = make_sched("active", 200, "price_next");
    T_EQ_I64(store_schedule_apply(st, &sched, &applied), ERR_OK, "%s: a late update", t->name);
    T_OK(!applied, "%s: never revives it", t->name);
    ev = make_event("evt_sub_same", EVENT_SUBSCRIPTION);
    ev.has_sub = true;
    ev.sub = s;
    ev.sub.pending_price_id[0] = '\0';
    str_copy(ev.sub.price_id, sizeof(ev.sub.price_id), "price_up");
    T_EQ_I64(store_event_record_apply(st, &in, &result, msg, sizeof(msg)), ERR_OK,
             "%s: the same second, another state (%s)", t->name, msg);
    T_OK(same, "%s: is told", t->name);
    ev.sub = s;
    str_copy(ev.id, sizeof(ev.id), "evt_sub_again");
    ev.sub.stripe_updated = s.stripe_updated + 1;
    T_EQ_I64(store_event_record_apply(st, &in, &result, msg, sizeof(msg)), ERR_OK,
             "%s: a later second (%s)", t->name, msg);
    T_OK(!same, "%s: is ordered, not told", t->name);
    store_close(st);
}

/* The outbox: events written with their change, claimed once, leased, finished, replayed */

#define OUTBOX_CLAIMERS 4

struct outbox_claimer {
    struct store *st;
    char owner[16];
    char ids[64][OUTBOX_ID_MAX];
    int n;
};

static void *outbox_claim_main(void *arg)
{
    struct outbox_claimer *c = arg;
    struct outbox_event got[3];
    int n = 0;

    do {
        if (store_outbox_claim(c->st, c->owner, clock_now() * 1000, 60000, 3, got, &n) != ERR_OK)
            break;
        for (int i = 0; i < n && c->n < 64; i++)
            memcpy(c->ids[c->n++], got[i].id, OUTBOX_ID_MAX);
    } while (n > 0);
    return NULL;
}

static int outbox_count(struct store *st, const char *type)
{
    static struct outbox_event l[64];
    int n = 0, k = 0;

    if (store_outbox_list(st, false, 64, l, &n) != ERR_OK)
        return -1;
    for (int i = 0; i < n; i++)
        k += strcmp(l[i].type, type) == 0;
    return k;
}

/* The newest event of type (by created_at, id), into *e; false when there is none. */
static bool outbox_newest(struct store *st, const char *type, struct outbox_event *e)
{
    static struct outbox_event l[64];
    int n = 0;

    if (store_outbox_list(st, false, 64, l, &n) != ERR_OK)
        return false;
    for (int i = 0; i < n; i++)
        if (strcmp(l[i].type, type) == 0) {
            *e = l[i];
            return true;
        }
    return false;
}

/*
 * A past-due subscription's grace ending by the clock sends tier_changed once, at its end; a
 * state stored after its grace had ended announced the change when it was stored, and the
 * sweep sends nothing more for it.
 */
static void case_grace_transitions(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct store_outbox_cfg cfg = { .enabled = true, .default_tier = "free", .grace_s = 3 * 86400 };
    struct subscription s = make_sub("sub_gr", "u_gr", SUB_STATUS_PAST_DUE);
    struct subscription late = make_sub("sub_gr2", "u_gr2", SUB_STATUS_PAST_DUE);
    const int64_t t0 = 1900000000, end = t0 + 3 * 86400;
    struct outbox_event e;
    bool applied = false;
    int n = -1;

    store_outbox_configure(st, &cfg);
    clock_set_fake(t0);
    for (struct subscription *x = &s; x; x = x == &s ? &late : NULL) {
        x->cancel_at_period_end = false;
        x->cancel_at = x->canceled_at = x->trial_end = 0;
        x->current_period_start = t0 - 86400;
        x->current_period_end = t0 + 29 * 86400;
    }
    s.stripe_updated = t0;
    T_EQ_I64(store_subscription_apply(st, &s, &applied), ERR_OK, "%s: past due", t->name);
    T_EQ_I64(outbox_count(st, "subscription.tier_changed"), 1, "%s: premium in grace", t->name);
    clock_set_fake(end - 1);
    T_EQ_I64(store_grace_transitions(st, clock_now(), &n), ERR_OK, "%s: sweep", t->name);
    T_EQ_I64(n, 0, "%s: a second before the end: nothing", t->name);
    clock_set_fake(end + 5);
    T_EQ_I64(store_grace_transitions(st, clock_now(), &n), ERR_OK, "%s: sweep", t->name);
    T_EQ_I64(n, 1, "%s: the end of grace", t->name);
    T_EQ_I64(outbox_count(st, "subscription.tier_changed"), 2, "%s: announced", t->name);
    T_OK(outbox_newest(st, "subscription.tier_changed", &e) &&
             strstr(e.payload, "\"old_tier\":\"premium\",\"new_tier\":\"free\"") &&
             strstr(e.payload, "\"effective_at\":1900259200"),
         "%s: premium to free at the end of grace: %.300s", t->name, e.payload);
    T_EQ_I64(store_grace_transitions(st, clock_now(), &n), ERR_OK, "%s: again", t->name);
    T_EQ_I64(n, 0, "%s: once", t->name);
    /* Stored only now, ten days after it went past due: its own apply says premium -> free. */
    late.stripe_updated = t0 - 10 * 86400;
    T_EQ_I64(store_subscription_apply(st, &late, &applied), ERR_OK, "%s: late", t->name);
    T_EQ_I64(store_grace_transitions(st, clock_now(), &n), ERR_OK, "%s: sweep", t->name);
    T_EQ_I64(n, 0, "%s: nothing more for a state stored after its grace", t->name);
    clock_set_fake(-1);
    store_close(st);
}

static void case_outbox(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct store_outbox_cfg cfg = { .enabled = true,
                                    .default_tier = "free",
                                    .thresholds = { 50, 100 },
                                    .threshold_count = 2 };
    struct usage_grant g = { .user_id = "u_ob",
                             .quota = "ai",
                             .window_start = 1000,
                             .n = 5,
                             .limit = 10 };
    struct subscription sub = make_sub("sub_ob", "u_ob", SUB_STATUS_ACTIVE);
    static struct outbox_event e, l[64];
    static struct outbox_claimer cl[OUTBOX_CLAIMERS];
    pthread_t th[OUTBOX_CLAIMERS];
    int64_t used = 0, now_ms = clock_now() * 1000;
    bool granted = false, inserted = false, done = false, applied = false;
    int n = 0, total = 0, dup = 0;

    store_outbox_configure(st, &cfg);
    sub.current_period_end = clock_now() + 86400;
    sub.cancel_at_period_end = false;
    sub.cancel_at = 0;
    sub.canceled_at = 0;
    /* A change whose COMMIT fails leaves no event: the event is written in its transaction. */
    store_group_fail_commits(st, 2);
    T_OK(store_usage_consume(st, &g, &granted, &used) != ERR_OK, "%s: commit fails", t->name);
    T_OK(store_subscription_apply(st, &sub, &applied) != ERR_OK, "%s: commit fails", t->name);
    store_group_fail_commits(st, 0);
    T_EQ_I64(store_outbox_list(st, false, 64, l, &n), ERR_OK, "%s: list", t->name);
    T_EQ_I64(n, 0, "%s: rolled back: no event", t->name);
    /* Quota events: 50% at 5, 100% and exhausted at 10, nothing more for a refusal. */
    T_EQ_I64(store_usage_consume(st, &g, &granted, &used), ERR_OK, "%s: consume 5", t->name);
    T_EQ_I64(outbox_count(st, "quota.threshold"), 1, "%s: 50%% crossed", t->name);
    T_EQ_I64(store_usage_consume(st, &g, &granted, &used), ERR_OK, "%s: consume 10", t->name);
    T_EQ_I64(store_usage_consume(st, &g, &granted, &used), ERR_OK, "%s: refused", t->name);
    T_OK(!granted, "%s: refused past the limit", t->name);
    T_EQ_I64(outbox_count(st, "quota.threshold"), 2, "%s: 100%% crossed once", t->name);
    T_EQ_I64(outbox_count(st, "quota.exhausted"), 1, "%s: exhausted once", t->name);
    /* A tier change: no subscription (free) to an active premium one. */
    applied = false;
    T_EQ_I64(store_subscription_apply(st, &sub, &applied), ERR_OK, "%s: apply", t->name);
    T_EQ_I64(outbox_count(st, "subscription.tier_changed"), 1, "%s: tier changed", t->name);
    T_EQ_I64(store_subscription_apply(st, &sub, &applied), ERR_OK, "%s: again", t->name);
    T_EQ_I64(outbox_count(st, "subscription.tier_changed"), 1, "%s: once", t->name);
    T_EQ_I64(store_outbox_list(st, false, 64, l, &n), ERR_OK, "%s: list", t->name);
    for (int i = 0; i < n; i++)
        if (!strcmp(l[i].type, "subscription.tier_changed"))
            T_OK(strstr(l[i].payload, "\"old_tier\":\"free\",\"new_tier\":\"premium\"") != NULL,
                 "%s: payload %s", t->name, l[i].payload);
    /* A dedupe key is written once. */
    memset(&e, 0, sizeof(e));
    (void)str_copy(e.id, sizeof(e.id), "evt_contract_1");
    (void)str_copy(e.type, sizeof(e.type), "test.event");
    (void)str_copy(e.payload, sizeof(e.payload), "{\"id\":\"evt_contract_1\"}");
    (void)str_copy(e.status, sizeof(e.status), "pending");
    (void)str_copy(e.dedupe_key, sizeof(e.dedupe_key), "contract:1");
    e.created_at = clock_now();
    e.next_attempt_at = now_ms;
    T_EQ_I64(store_outbox_insert(st, &e, &inserted), ERR_OK, "%s: insert", t->name);
    T_OK(inserted, "%s: inserted", t->name);
    (void)str_copy(e.id, sizeof(e.id), "evt_contract_2");
    T_EQ_I64(store_outbox_insert(st, &e, &inserted), ERR_OK, "%s: same key", t->name);
    T_OK(!inserted, "%s: not twice", t->name);
    for (int i = 0; i < 10; i++) {
        (void)snprintf(e.id, sizeof(e.id), "evt_c_%d", i);
        (void)snprintf(e.dedupe_key, sizeof(e.dedupe_key), "contract:many:%d", i);
        T_EQ_I64(store_outbox_insert(st, &e, &inserted), ERR_OK, "%s: insert %d", t->name, i);
    }
    T_EQ_I64(store_outbox_list(st, false, 64, l, &n), ERR_OK, "%s: list", t->name);
    /* Concurrent claimers: every event once. */
    for (int i = 0; i < OUTBOX_CLAIMERS; i++) {
        cl[i].st = st;
        cl[i].n = 0;
        cl[i].owner[0] = (char)('a' + i); /* one letter each */
        cl[i].owner[1] = '\0';
        pthread_create(&th[i], NULL, outbox_claim_main, &cl[i]);
    }
    for (int i = 0; i < OUTBOX_CLAIMERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < OUTBOX_CLAIMERS; i++)
        for (int j = 0; j < cl[i].n; j++) {
            total++;
            for (int a = 0; a < OUTBOX_CLAIMERS; a++)
                for (int b = 0; b < cl[a].n; b++)
                    dup += (a != i || b != j) && !strcmp(cl[i].ids[j], cl[a].ids[b]);
        }
    T_EQ_I64(total, n, "%s: each of the %d events claimed", t->name, n);
    T_EQ_I64(dup, 0, "%s: none claimed twice", t->name);
    /* Leased: no one else gets them until the lease ends; then another may. */
    T_EQ_I64(store_outbox_claim(st, "other", now_ms + 1000, 60000, 64, l, &n), ERR_OK,
             "%s: claim leased", t->name);
    T_EQ_I64(n, 0, "%s: all leased", t->name);
    T_EQ_I64(store_outbox_claim(st, "late", now_ms + 61000 + 1000, 60000, 1, l, &n), ERR_OK,
             "%s: claim after the lease", t->name);
    T_EQ_I64(n, 1, "%s: reclaimed", t->name);
    e = l[0];
    (void)str_copy(e.claimed_by, sizeof(e.claimed_by), "owner0");
    (void)str_copy(e.status, sizeof(e.status), "delivered");
    T_EQ_I64(store_outbox_finish(st, &e, &done), ERR_OK, "%s: finish by the old owner", t->name);
    T_OK(!done, "%s: the lease is no longer its", t->name);
    (void)str_copy(e.claimed_by, sizeof(e.claimed_by), "late");
    e.attempts = 1;
    e.delivered_at = 1700000000;
    T_EQ_I64(store_outbox_finish(st, &e, &done), ERR_OK, "%s: finish", t->name);
    T_OK(done, "%s: finished", t->name);
    T_EQ_I64(store_outbox_get(st, e.id, &l[1]), ERR_OK, "%s: get", t->name);
    T_OK(!strcmp(l[1].status, "delivered") && l[1].attempts == 1 && !l[1].claimed_by[0] &&
             l[1].delivered_at == 1700000000,
         "%s: recorded", t->name);
    T_EQ_I64(store_outbox_claim(st, "late", now_ms + 200000, 60000, 64, l, &n), ERR_OK,
             "%s: claim the rest", t->name);
    T_EQ_I64(n, total - 1, "%s: all but the delivered one", t->name);
    /* A failed event: listed with --failed; replay makes it due again. */
    e = l[0];
    (void)str_copy(e.status, sizeof(e.status), "failed");
    (void)str_copy(e.last_error, sizeof(e.last_error), "HTTP 500");
    T_EQ_I64(store_outbox_finish(st, &e, &done), ERR_OK, "%s: give up", t->name);
    T_EQ_I64(store_outbox_list(st, true, 64, l, &n), ERR_OK, "%s: failed", t->name);
    T_OK(n == 1 && !strcmp(l[0].id, e.id) && !strcmp(l[0].last_error, "HTTP 500"),
         "%s: the failed one", t->name);
    T_EQ_I64(store_outbox_replay(st, e.id, now_ms), ERR_OK, "%s: replay", t->name);
    T_EQ_I64(store_outbox_replay(st, "evt_none", now_ms), ERR_NOT_FOUND, "%s: none", t->name);
    T_EQ_I64(store_outbox_claim(st, "again", now_ms, 60000, 64, l, &n), ERR_OK, "%s: claim",
             t->name);
    T_OK(n == 1 && !strcmp(l[0].id, e.id) && l[0].attempts == 0, "%s: due again", t->name);
    /* A duplicate subscription canceled: its event commits with the record. */
    {
        struct subscription d1 = make_sub("sub_obd1", "u_obd", SUB_STATUS_ACTIVE);
        struct subscription d2 = make_sub("sub_obd2", "u_obd", SUB_STATUS_ACTIVE);
        struct duplicate_record dl[4];

        d1.created = 100;
        d2.created = 200;
        T_EQ_I64(store_subscription_apply(st, &d1, &applied), ERR_OK, "%s: first", t->name);
        T_EQ_I64(store_subscription_apply(st, &d2, &applied), ERR_OK, "%s: second", t->name);
        T_EQ_I64(store_duplicate_list(st, true, 4, dl, &n), ERR_OK, "%s: dups", t->name);
        T_EQ_I64(n, 1, "%s: one duplicate", t->name);
        T_EQ_I64(outbox_count(st, "subscription.duplicate_canceled"), 0, "%s: not yet", t->name);
        (void)str_copy(dl[0].status, sizeof(dl[0].status), "resolved");
        dl[0].refunded = 500;
        T_EQ_I64(store_duplicate_update(st, &dl[0]), ERR_OK, "%s: resolved", t->name);
        T_EQ_I64(outbox_count(st, "subscription.duplicate_canceled"), 1, "%s: canceled event",
                 t->name);
    }
    store_close(st);
}

/* A grant of extra units, as the API makes it. */
static struct ledger_entry unit_grant(const char *user, int64_t units, int64_t window_start,
                                      const char *key)
{
    struct ledger_entry e = { .amount = units, .window_start = window_start, .created_ms = 1 };

    (void)str_copy(e.user_id, sizeof(e.user_id), user);
    (void)str_copy(e.quota, sizeof(e.quota), "ai_minutes");
    (void)str_copy(e.kind, sizeof(e.kind), "grant");
    (void)str_copy(e.idem_key, sizeof(e.idem_key), key);
    return e;
}

/*
 * Issue #15: past the limit a consume draws on the window's extra units, then the balance, all
 * or nothing; a refund gives the drawn balance units back first; each change is one ledger
 * entry with the ledger on, none with it off (grants always); a keyed grant is made once.
 */
static void case_ledger(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct usage_grant g = { "u_lg", "ai_minutes", 86400, 10, 10, false, "key-1", "req_1" };
    struct ledger_entry e = unit_grant("u_lg", 5, QUOTA_BALANCE, "top-1"), got, l[8];
    struct quota_extra after, x[4];
    struct usage_outcome o = asked("free");
    struct usage_read rd[1];
    const char *quotas[] = { "ai_minutes" };
    const int64_t starts[] = { 86400 };
    bool replayed = true;
    int n = -1;

    store_ledger_set(st, true);
    T_EQ_I64(store_usage_meter(st, &g, &o), ERR_OK, "%s: 10 of 10", t->name);
    T_OK(o.granted && o.used == 10 && o.remaining == 0, "%s: the limit is spent", t->name);
    g.n = 3;
    o = asked("free");
    T_EQ_I64(store_usage_meter(st, &g, &o), ERR_OK, "%s: 3 more", t->name);
    T_OK(!o.granted && o.used == 10 && o.balance == 0, "%s: refused without extras", t->name);
    T_EQ_I64(store_quota_grant(st, &(struct quota_grant_in){ &e, 10 }, &got, &after, &replayed),
             ERR_OK, "%s: grant 5", t->name);
    T_OK(!replayed && got.id > 0 && got.balance == 5 && after.units == 5, "%s: a balance of 5",
         t->name);
    T_EQ_I64(store_quota_grant(st, &(struct quota_grant_in){ &e, 10 }, &got, &after, &replayed),
             ERR_OK, "%s: again", t->name);
    T_OK(replayed && after.units == 5, "%s: the same key grants once", t->name);
    e.amount = 6;
    T_EQ_I64(store_quota_grant(st, &(struct quota_grant_in){ &e, 10 }, &got, &after, &replayed),
             ERR_CONFLICT, "%s: the key with another grant", t->name);
    e = unit_grant("u_lg", 2, 86400, "");
    T_EQ_I64(store_quota_grant(st, &(struct quota_grant_in){ &e, 10 }, &got, &after, &replayed),
             ERR_OK, "%s: +2 window", t->name);
    T_OK(got.used_after == 10 && after.units == 2, "%s: the window's extra", t->name);
    o = asked("free");
    T_EQ_I64(store_usage_meter(st, &g, &o), ERR_OK, "%s: 3 past 10", t->name);
    T_OK(o.granted && o.used == 13 && o.extra == 2 && o.balance == 4 && o.remaining == 4,
         "%s: 2 extra, then 1 from the balance", t->name);
    g.n = 4;
    o = asked("free");
    T_EQ_I64(store_usage_meter(st, &g, &o), ERR_OK, "%s: 4 more", t->name);
    T_OK(o.granted && o.used == 17 && o.balance == 0 && o.remaining == 0, "%s: all of it", t->name);
    g.n = 1;
    o = asked("free");
    T_EQ_I64(store_usage_meter(st, &g, &o), ERR_OK, "%s: one more", t->name);
    T_OK(!o.granted && o.used == 17, "%s: refused: nothing left", t->name);
    g.n = 6;
    o = asked("free");
    T_EQ_I64(store_usage_refund(st, &g, NULL, &o, &replayed), ERR_OK, "%s: refund 6", t->name);
    T_OK(o.used == 11 && o.balance == 5, "%s: the 5 balance units come back first", t->name);
    T_EQ_I64(store_usage_read_many(st, "u_lg", 1, quotas, starts, rd), ERR_OK, "%s: read", t->name);
    T_OK(rd[0].used == 11 && rd[0].extra == 2 && rd[0].balance == 5, "%s: read with extras",
         t->name);
    T_EQ_I64(store_ledger_list(st, "u_lg", NULL, 0, 8, l, &n), ERR_OK, "%s: ledger", t->name);
    T_EQ_I64(n, 6, "%s: 2 grants, 3 granted consumes, 1 refund", t->name);
    T_OK(strcmp(l[0].kind, "refund") == 0 && l[0].balance == 5 && l[0].used_after == 11,
         "%s: newest first: the refund", t->name);
    T_OK(strcmp(l[5].kind, "consume") == 0 && strcmp(l[5].idem_key, "key-1") == 0 &&
             strcmp(l[5].request_id, "req_1") == 0 && l[5].id < l[0].id,
         "%s: the first consume, its key and request id", t->name);
    T_OK(l[5].amount == 10 && l[5].used_after == 10 && l[5].balance == 0 &&
             l[5].window_start == 86400 && strcmp(l[5].quota, "ai_minutes") == 0,
         "%s: the first consume's amount, counter after and window", t->name);
    T_EQ_I64(store_ledger_list(st, "u_lg", NULL, l[2].id, 8, l, &n), ERR_OK, "%s: page", t->name);
    T_EQ_I64(n, 3, "%s: before an id", t->name);
    T_EQ_I64(store_ledger_list(st, "u_lg", "scenarios", 0, 8, l, &n), ERR_OK, "%s: quota", t->name);
    T_EQ_I64(n, 0, "%s: another quota's: none", t->name);
    T_EQ_I64(store_quota_extras(st, "u_lg", 4, x, &n), ERR_OK, "%s: extras", t->name);
    T_EQ_I64(n, 2, "%s: the window's row and the balance", t->name);
    g = (struct usage_grant){ "u_tr", "ai_minutes", 86400, 7, 5, true, NULL, "req_2" };
    o = asked("free");
    T_EQ_I64(store_usage_meter(st, &g, &o), ERR_OK, "%s: track 7 of 5", t->name);
    T_EQ_I64(store_ledger_list(st, "u_tr", NULL, 0, 8, l, &n), ERR_OK, "%s: track's", t->name);
    T_OK(n == 1 && strcmp(l[0].kind, "track") == 0 && l[0].amount == 7 && l[0].used_after == 7 &&
             strcmp(l[0].request_id, "req_2") == 0 && l[0].idem_key[0] == '\0',
         "%s: a track past the limit is recorded, one entry", t->name);
    store_ledger_set(st, false);
    g = (struct usage_grant){ "u_off", "ai_minutes", 86400, 1, 10, false, NULL, NULL };
    o = asked("free");
    T_EQ_I64(store_usage_meter(st, &g, &o), ERR_OK, "%s: ledger off", t->name);
    T_EQ_I64(store_ledger_list(st, "u_off", NULL, 0, 8, l, &n), ERR_OK, "%s: list", t->name);
    T_EQ_I64(n, 0, "%s: no entry with the ledger off", t->name);
    store_close(st);
}

struct extra_worker {
    struct store *st;
    bool refund;
    int granted;
    int failed;
};

/* 5 consumes of 1, or 5 refunds of 1 between consumes. */
static void *extra_work(void *arg)
{
    struct extra_worker *w = arg;
    struct usage_grant g = { "u_xc", "ai_minutes", 86400, 1, 10, false, NULL, NULL };

    for (int i = 0; i < 5; i++) {
        struct usage_outcome o = asked("free");
        bool replayed = false;
        enum err err = w->refund ? store_usage_refund(w->st, &g, NULL, &o, &replayed)
                                 : store_usage_meter(w->st, &g, &o);
        w->failed += err != ERR_OK;
        w->granted += err == ERR_OK && o.granted && !w->refund;
    }
    return NULL;
}

/* Consumes and refunds at once past the limit never draw more than the balance, nor deadlock. */
static void case_extras_concurrent(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct usage_grant g = { "u_xc", "ai_minutes", 86400, 10, 10, false, NULL, NULL };
    struct ledger_entry e = unit_grant("u_xc", 20, QUOTA_BALANCE, ""), got;
    struct extra_worker w[THREADS];
    pthread_t th[THREADS];
    struct quota_extra after;
    struct usage_outcome o = asked("free");
    const char *quotas[] = { "ai_minutes" };
    const int64_t starts[] = { 86400 };
    struct usage_read rd[1];
    bool replayed = false;
    int granted = 0, failed = 0;

    store_ledger_set(st, true);
    T_EQ_I64(store_usage_meter(st, &g, &o), ERR_OK, "%s: the limit spent", t->name);
    T_EQ_I64(store_quota_grant(st, &(struct quota_grant_in){ &e, 10 }, &got, &after, &replayed),
             ERR_OK, "%s: 20", t->name);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct extra_worker){ st, i % 4 == 3, 0, 0 };
        if (pthread_create(&th[i], NULL, extra_work, &w[i]) != 0) {
            printf("Bail out! pthread_create\n");
            exit(1);
        }
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        granted += w[i].granted;
        failed += w[i].failed;
    }
    T_EQ_I64(failed, 0, "%s: no consume or refund failed", t->name);
    T_EQ_I64(store_usage_read_many(st, "u_xc", 1, quotas, starts, rd), ERR_OK, "%s: read", t->name);
    /* Every unit past 10 came from the balance, and every balance unit is accounted for. */
    T_EQ_I64(rd[0].used - 10 + rd[0].balance, 20,
             "%s: used past the limit + balance = 20 (%lld, %lld)", t->name, (long long)rd[0].used,
             (long long)rd[0].balance);
    T_OK(granted >= 20 && rd[0].balance >= 0, "%s: %d granted, never below zero", t->name, granted);
    store_close(st);
}

/*
 * store_usage_meter_all (the gate's several quota rules): all or nothing. A refusal after a
 * grant undoes the grant; a refusal at the first grant is a lone refusal; with the ledger on,
 * no entry is left by an undone grant.
 */
static void case_meter_all(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct usage_grant g[2] = { { "u_ma", "ai_minutes", 86400, 3, 10, false, NULL, "req_a" },
                                { "u_ma", "scenarios", 86400, 1, 1, false, NULL, "req_b" } };
    struct usage_outcome o[2] = { asked("free"), asked("free") };
    struct usage_read rd[2];
    struct ledger_entry l[8];
    const char *quotas[] = { "ai_minutes", "scenarios" };
    const int64_t starts[] = { 86400, 86400 };
    size_t refused = 99;
    int n = -1;

    store_ledger_set(st, true);
    o[1].limit = 1;
    T_EQ_I64(store_usage_meter_all(st, g, o, 2, &refused), ERR_OK, "%s: both", t->name);
    T_EQ_I64(refused, 2, "%s: both granted", t->name);
    T_OK(o[0].granted && o[0].used == 3 && o[1].granted && o[1].used == 1, "%s: 3 and 1", t->name);
    o[0] = asked("free");
    o[1] = asked("free");
    o[1].limit = 1;
    T_EQ_I64(store_usage_meter_all(st, g, o, 2, &refused), ERR_OK, "%s: again", t->name);
    T_EQ_I64(refused, 1, "%s: the second quota is used up", t->name);
    T_OK(!o[1].granted && o[1].used == 1, "%s: its outcome: refused at 1", t->name);
    T_EQ_I64(store_usage_read_many(st, "u_ma", 2, quotas, starts, rd), ERR_OK, "%s: read", t->name);
    T_EQ_I64(rd[0].used, 3, "%s: the first quota's 3 were undone", t->name);
    T_EQ_I64(rd[1].used, 1, "%s: the second unchanged", t->name);
    T_EQ_I64(store_ledger_list(st, "u_ma", NULL, 0, 8, l, &n), ERR_OK, "%s: ledger", t->name);
    T_EQ_I64(n, 2, "%s: only the first call's two entries", t->name);
    /* the used-up quota first: a lone refusal, nothing to undo */
    struct usage_grant rev[2] = { g[1], g[0] };
    struct usage_outcome ro[2] = { asked("free"), asked("free") };
    ro[0].limit = 1;
    T_EQ_I64(store_usage_meter_all(st, rev, ro, 2, &refused), ERR_OK, "%s: reversed", t->name);
    T_EQ_I64(refused, 0, "%s: refused at the first", t->name);
    T_OK(!ro[0].granted && ro[1].used == 0 && !ro[1].granted, "%s: the second left as asked",
         t->name);
    T_EQ_I64(store_usage_meter_all(st, g, o, 0, &refused), ERR_INVALID, "%s: none", t->name);
    T_EQ_I64(store_usage_meter_all(st, g, o, STORE_METER_ALL_MAX + 1, &refused), ERR_INVALID,
             "%s: too many", t->name);
    store_close(st);
}

/*
 * A gate's rules refused at the second after a grant at the first: the grant is undone, but the
 * refused quota's quota.exhausted is sent as a lone refusal's is (README: "or is refused").
 */
static void case_meter_all_events(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    struct store_outbox_cfg cfg = { .enabled = true, .default_tier = "free" };
    struct usage_grant g[2] = { { "u_mae", "ai_minutes", 86400, 3, 10, false, NULL, NULL },
                                { "u_mae", "scenarios", 86400, 2, 1, false, NULL, NULL } };
    struct usage_outcome o[2] = { asked("free"), asked("free") };
    struct outbox_event e;
    size_t refused = 99;

    store_outbox_configure(st, &cfg);
    o[1].limit = 1;
    T_EQ_I64(store_usage_meter_all(st, g, o, 2, &refused), ERR_OK, "%s: meter", t->name);
    T_EQ_I64(refused, 1, "%s: the second refused (2 of a limit of 1)", t->name);
    T_EQ_I64(outbox_count(st, "quota.exhausted"), 1, "%s: its exhausted event", t->name);
    T_OK(outbox_newest(st, "quota.exhausted", &e) && strstr(e.payload, "\"quota\":\"scenarios\""),
         "%s: for the refused quota: %.200s", t->name, e.payload);
    T_EQ_I64(outbox_count(st, "quota.threshold"), 0, "%s: none for the undone grant", t->name);
    store_close(st);
}

/* The counters of u_uc's two quotas in window 86400, as the usage endpoint reads them. */
static struct usage_read uc_read(struct store *st, const struct target *t, int quota)
{
    const char *quotas[] = { "ai_minutes", "scenarios" };
    const int64_t starts[] = { 86400, 86400 };
    struct usage_read rd[2] = { { -1, -1, -1 }, { -1, -1, -1 } };

    T_EQ_I64(store_usage_read_many(st, "u_uc", 2, quotas, starts, rd), ERR_OK, "%s: read", t->name);
    return rd[quota];
}

/*
 * With the caches on (as serve runs), every way of changing a user's counters or extra units
 * is seen by the next usage read at once: the engine that keeps counters in memory drops them
 * on each of these writes. A read of other windows is read, not answered from memory.
 */
static void case_usage_cache(const char *url, const struct target *t)
{
    struct store *st = open_migrated(url);
    const struct store_cache_params cache = { .users = 64, .ttl_ms = 600000 };
    struct usage_grant g = { "u_uc", "ai_minutes", 86400, 3, 10, false, NULL, NULL };
    struct usage_grant both[2] = { { "u_uc", "ai_minutes", 86400, 1, 10, false, NULL, NULL },
                                   { "u_uc", "scenarios", 86400, 2, 5, false, NULL, NULL } };
    struct usage_outcome o = asked("free"), ob[2] = { asked("free"), asked("free") };
    const struct store_idempotency k = { "k_uc", "usage.consume", "h_uc", 1700000000 };
    struct ledger_entry e = unit_grant("u_uc", 4, 86400, ""), got;
    struct quota_extra after;
    bool granted = false, replayed = false;
    int64_t used = -1;
    size_t refused = 99;
    const char *quotas[] = { "ai_minutes" };
    int64_t other[] = { 2 * 86400 };
    struct usage_read rd[1];

    store_cache_start(st, &cache);
    T_EQ_I64(uc_read(st, t, 0).used, 0, "%s: nothing used", t->name);
    T_EQ_I64(store_usage_consume(st, &g, &granted, &used), ERR_OK, "%s: consume 3", t->name);
    T_EQ_I64(uc_read(st, t, 0).used, 3, "%s: a consume is seen", t->name);
    T_EQ_I64(store_usage_refund(st, &both[0], NULL, &o, &replayed), ERR_OK, "%s: refund", t->name);
    T_EQ_I64(uc_read(st, t, 0).used, 2, "%s: a refund is seen", t->name);
    o = asked("free");
    T_EQ_I64(store_usage_meter(st, &g, &o), ERR_OK, "%s: meter 3", t->name);
    T_EQ_I64(uc_read(st, t, 0).used, 5, "%s: a metered consume is seen", t->name);
    o = asked("free");
    T_EQ_I64(store_usage_consume_once(st, &g, &k, &o, &replayed), ERR_OK, "%s: keyed", t->name);
    T_EQ_I64(uc_read(st, t, 0).used, 8, "%s: a keyed consume is seen", t->name);
    g.track = true;
    g.n = 4;
    T_EQ_I64(store_usage_consume(st, &g, &granted, &used), ERR_OK, "%s: track 4", t->name);
    T_EQ_I64(uc_read(st, t, 0).used, 12, "%s: a track is seen", t->name);
    both[0].limit = ob[0].limit = 100;
    ob[1].limit = 5;
    T_EQ_I64(store_usage_meter_all(st, both, ob, 2, &refused), ERR_OK, "%s: both", t->name);
    T_EQ_I64(refused, 2, "%s: both granted", t->name);
    T_EQ_I64(uc_read(st, t, 1).used, 2, "%s: a gate's rules are seen", t->name);
    T_EQ_I64(uc_read(st, t, 0).used, 13, "%s: each of them", t->name);
    T_EQ_I64(store_quota_grant(st, &(struct quota_grant_in){ &e, 10 }, &got, &after, &replayed),
             ERR_OK, "%s: grant 4 to the window", t->name);
    T_EQ_I64(uc_read(st, t, 0).extra, 4, "%s: the window's grant is seen", t->name);
    e = unit_grant("u_uc", 7, QUOTA_BALANCE, "");
    T_EQ_I64(store_quota_grant(st, &(struct quota_grant_in){ &e, 10 }, &got, &after, &replayed),
             ERR_OK, "%s: grant 7 to the balance", t->name);
    T_EQ_I64(uc_read(st, t, 0).balance, 7, "%s: the balance's grant is seen", t->name);
    T_EQ_I64(store_usage_read_many(st, "u_uc", 1, quotas, other, rd), ERR_OK, "%s: next day",
             t->name);
    T_OK(rd[0].used == 0 && rd[0].extra == 0 && rd[0].balance == 7,
         "%s: another window is read, not the cached one's counters", t->name);
    T_EQ_I64(uc_read(st, t, 0).used, 13, "%s: and the first window again", t->name);
    store_close(st);
}

static const struct {
    const char *name;
    void (*run)(const char *url, const struct target *t);
    bool persistent_only;
} cases[] = {
    { "ledger", case_ledger, false },
    { "meter_all", case_meter_all, false },
    { "usage_cache", case_usage_cache, false },
    { "meter_all_events", case_meter_all_events, false },
    { "grace_transitions", case_grace_transitions, false },
    { "extras_concurrent", case_extras_concurrent, false },
    { "migrate", case_migrate, false },
    { "ping", case_ping, false },
    { "customer", case_customer, false },
    { "too_long", case_too_long, false },
    { "subscription", case_subscription, false },
    { "subscription_status", case_subscription_status, false },
    { "subscription_for_user", case_subscription_for_user, false },
    { "invoice_list", case_invoice_list, false },
    { "usage", case_usage, false },
    { "concurrent_consume", case_concurrent_consume, false },
    { "event", case_event, false },
    { "reopen", case_reopen, true },
    { "migrate_concurrent", case_migrate_concurrent, true },
    { "subscription_apply", case_subscription_apply, false },
    { "event_inbox", case_event_inbox, false },
    { "event_concurrent", case_event_concurrent, false },
    { "consume_once", case_consume_once, false },
    { "consume_once_concurrent", case_consume_once_concurrent, false },
    { "idempotency_prune", case_idempotency_prune, false },
    { "invoice_apply", case_invoice_apply, false },
    { "customer_link", case_customer_link, false },
    { "event_ownership", case_event_ownership, false },
    { "checkout", case_checkout, false },
    { "duplicates", case_duplicates, false },
    { "duplicates_pending_any", case_duplicates_pending_any, true },
    { "usage_refund", case_usage_refund, false },
    { "group_commit", case_group_commit, false },
    { "group_commit_skewed", case_group_commit_skewed, false },
    { "group_commit_fibers", case_group_commit_fibers, false },
    { "group_commit_fibers_only", case_group_commit_fibers_only, false },
    { "away_reads", case_away_reads, false },
    { "group_pipeline_skewed", case_group_pipeline_skewed, false },
    { "group_events", case_group_events, false },
    { "group_events_skewed", case_group_events_skewed, false },
    { "group_commit_fails", case_group_commit_fails, false },
    { "plan_changes", case_plan_changes, false },
    { "outbox", case_outbox, false },
};

/* PostgreSQL going away and coming back (SUBGATE_TEST_PG_DIR: the server's pg.sh DIR) */

#define OUTAGE_MAX_MS 3000 /* an operation during an outage fails within this */

static void pg_server(const char *action)
{
    char prog[] = "scripts/pg.sh", act[16], dir[PATH_MAX];
    char *argv[] = { prog, act, dir, NULL };
    pid_t pid;
    int status = -1;

    str_copy(act, sizeof(act), action);
    str_copy(dir, sizeof(dir), getenv("SUBGATE_TEST_PG_DIR"));
    if (posix_spawn(&pid, prog, NULL, NULL, argv, environ) != 0 || waitpid(pid, &status, 0) < 0 ||
        !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        printf("Bail out! %s %s failed\n", prog, act);
        exit(1);
    }
}

/* THREADS threads consume once each at once, so several pooled connections are used. */
static int consume_burst(struct store *st)
{
    struct worker w[THREADS];
    pthread_t th[THREADS];
    int failed = 0;

    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){ st, 0, 0 };
        if (pthread_create(&th[i], NULL, consume_one, &w[i]) != 0)
            exit(1);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        failed += w[i].failed;
    }
    return failed;
}

static void case_pg_outage(void)
{
    char url[PATH_MAX + 16];
    struct store *st;
    int64_t used = -1, start;
    enum err err;

    pg_url(url, sizeof(url), "outage");
    st = open_migrated(url);
    T_EQ_I64(consume_burst(st), 0, "outage: a burst before");
    pg_server("pause");
    pg_server("resume");
    T_EQ_I64(consume_burst(st), 0, "outage: after a restart, every connection works at once");
    pg_server("pause");
    start = clock_mono_ms();
    err = store_usage_get(st, "busy", "ai_minutes", 86400, &used);
    T_OK(err == ERR_UNAVAILABLE || err == ERR_STORE, "outage: an operation fails (%d)", err);
    T_OK(clock_mono_ms() - start < OUTAGE_MAX_MS, "outage: within %d ms", OUTAGE_MAX_MS);
    T_EQ_I64(consume_burst(st), THREADS, "outage: every consume fails");
    T_EQ_I64(store_ping(st), ERR_STORE, "outage: ping fails");
    pg_server("resume");
    T_EQ_I64(store_ping(st), ERR_OK, "outage: ping again without reopening");
    T_EQ_I64(consume_burst(st), 0, "outage: consumes again");
    T_EQ_I64(store_usage_get(st, "busy", "ai_minutes", 86400, &used), ERR_OK, "outage: get");
    T_EQ_I64(used, 3 * THREADS, "outage: the granted consumes counted, the failed ones not");
    store_close(st);
}

/* The value of a one-row, one-column query on the database at url; "" when there is none. */
static void pg_query_value(const char *url, const char *sql, char *out, size_t size)
{
    PGconn *c = PQconnectdb(url);
    PGresult *res = PQexec(c, sql);

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        printf("Bail out! %s: %s\n", sql, PQerrorMessage(c));
        exit(1);
    }
    str_copy(out, size, PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    PQfinish(c);
}

/* Migration 012: a webhook's raw body is compressed with lz4 where the server offers it. */
static void case_pg_raw_body_lz4(void)
{
    enum {
        BODY = 6000
    };

    char url[PATH_MAX + 16], offered[8], method[16];
    char *body = xmalloc(BODY + 1), *raw = NULL;
    size_t raw_len = 0;
    struct webhook_event got;
    struct store *st;
    struct billing_event ev = make_event("evt_lz4", EVENT_IGNORED);
    const struct store_event_in in = { &ev, body, BODY, STORE_EVENT_RECEIVE, NULL };
    enum store_event_result result;
    char errbuf[256];

    for (int i = 0; i < BODY; i++) /* compressible, as JSON is: a field name over and over */
        body[i] = "{\"object\":\"invoice\",\"paid\":true},"[i % 33];
    body[BODY] = '\0';
    pg_url(url, sizeof(url), "lz4");
    st = open_migrated(url);
    T_EQ_I64(store_event_record_apply(st, &in, &result, errbuf, sizeof(errbuf)), ERR_OK,
             "lz4: an event with a %d-byte body recorded", BODY);
    pg_query_value(url,
                   "SELECT 'lz4' = ANY (enumvals) FROM pg_settings "
                   "WHERE name = 'default_toast_compression'",
                   offered, sizeof(offered));
    pg_query_value(url, "SELECT pg_column_compression(raw_body) FROM webhook_events", method,
                   sizeof(method));
    T_EQ_STR(method, strcmp(offered, "t") == 0 ? "lz4" : "pglz",
             "lz4: the body compressed with lz4 where the server offers it (offered: '%s')",
             offered);
    T_EQ_I64(store_event_get_raw(st, "evt_lz4", &got, &raw, &raw_len), ERR_OK, "lz4: raw read");
    T_OK(raw && raw_len == BODY && memcmp(raw, body, BODY) == 0, "lz4: the body, byte for byte");
    free(raw);
    free(body);
    store_close(st);
}

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
        { "postgres://u:secret@127.0.0.1:1/subgate", ERR_UNAVAILABLE,
          "cannot open database 'postgresql://u@127.0.0.1:1/subgate': connection to server" },
        { "postgresql://u:secret@127.0.0.1:1/subgate?password=secret", ERR_UNAVAILABLE,
          "cannot open database 'postgresql://u@127.0.0.1:1/subgate': " },
        { "postgres://127.0.0.1:1/subgate?password=secret&bogus=1", ERR_INVALID,
          "cannot open database 'postgresql://...': invalid URL" },
        { "postgres://u:secret/x@127.0.0.1:1/subgate", ERR_INVALID, "invalid URL" },
        { "postgres://u:sec@ret@127.0.0.1:1/subgate", ERR_INVALID, "invalid URL" },
        { "postgres://u:se%40cret@127.0.0.1:1/subgate", ERR_UNAVAILABLE,
          "cannot open database 'postgresql://u@127.0.0.1:1/subgate': " },
        { "postgres://u:secret@127.0.0.1:1/subgate?secret=1", ERR_INVALID,
          "cannot open database 'postgresql://...': invalid URL" },
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
        if (targets[i].available && !targets[i].available()) {
            printf("# %s: skipped (not configured)\n", targets[i].name);
            continue;
        }
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
    if (pg_available())
        case_pg_raw_body_lz4();
    if (pg_available() && getenv("SUBGATE_TEST_PG_DIR"))
        case_pg_outage();
    if (pg_admin)
        pg_drop_all();
    if (nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        printf("# could not remove %s\n", tmpdir);
    return t_done();
}
