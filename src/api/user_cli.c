/*
 * user_cli.c: `subgate user ID`, the support view of one user (issue #15 item 6): the Stripe
 * customer, the subscription and any plan change in flight, the tier in force and where it comes
 * from, the grants, usage in each quota's current window (with extra units and balances), the
 * last usage ledger entries, the last invoices, the recent webhook events that name the user or
 * their customer, and the recent outgoing events about the user with their deliveries. Read only.
 */
#include "api/user_cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "api/grants.h"
#include "base/clock.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "billing/entitlement.h"
#include "billing/quota.h"
#include "billing/status.h"
#include "config/config.h"
#include "store/store.h"

#define USER_CLI_INVOICES 5
#define USER_CLI_GRANTS   20
#define USER_CLI_SCAN     200 /* the newest events looked through for the user's */
#define USER_CLI_EVENTS   10
#define USER_CLI_LEDGER   10
#define USER_CLI_EXTRAS   32
#define DAY_S             INT64_C(86400)

/*
 * s for the terminal (str_for_terminal): text stored through the API or by Stripe cannot forge
 * lines of the report or drive the terminal. One of 16 buffers in turn: enough for the
 * arguments of one line.
 */
static const char *esc(const char *s)
{
    static char pool[16][1024];
    static int next;

    return str_for_terminal(pool[next++ % 16], sizeof(pool[0]), s);
}

/* "2024-01-31T12:00:00Z", "-" for 0, or the number when it is out of range. */
static const char *when(int64_t t, char buf[32])
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (!t)
        return "-";
    if (!gmtime_r(&tt, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        (void)snprintf(buf, 32, "%lld", (long long)t);
    return buf;
}

static void print_customer(FILE *out, struct store *st, const char *user, struct customer *c)
{
    enum err err = store_customer_get(st, user, c);

    if (err) {
        memset(c, 0, sizeof(*c));
        fprintf(out, "customer:      none (never went to checkout)\n");
        return;
    }
    fprintf(out, "customer:      %s  email %s  had a trial: %s\n", esc(c->stripe_customer_id),
            c->email[0] ? esc(c->email) : "-", c->had_trial ? "yes" : "no");
}

/* The subscription and its plan change in flight; false when there is none. */
static bool print_subscription(FILE *out, struct store *st, const char *user,
                               struct subscription *s)
{
    char a[32], b[32];
    struct schedule_record sched;

    if (store_subscription_get_for_user(st, user, s) != ERR_OK) {
        fprintf(out, "subscription:  none\n");
        return false;
    }
    fprintf(out, "subscription:  %s  %s  tier %s  price %s\n", esc(s->id),
            sub_status_name(s->status), esc(s->tier), esc(s->price_id));
    fprintf(out, "  period:      %s .. %s", when(s->current_period_start, a),
            when(s->current_period_end, b));
    fprintf(out, "%s\n", s->cancel_at_period_end ? "  (cancels at its end)" : "");
    if (s->trial_end)
        fprintf(out, "  trial end:   %s\n", when(s->trial_end, a));
    if (s->pending_price_id[0])
        fprintf(out, "  pending:     upgrade to %s waits for invoice %s (lapses %s)\n",
                esc(s->pending_price_id), esc(s->latest_invoice), when(s->pending_expires_at, a));
    if (s->schedule_id[0] && store_schedule_get(st, s->schedule_id, &sched) == ERR_OK)
        fprintf(out, "  scheduled:   %s (%s): %s from %s\n", esc(sched.id), esc(sched.status),
                sched.next_price_id[0] ? esc(sched.next_price_id) : "-", when(sched.next_at, a));
    return true;
}

static void print_grants(FILE *out, struct store *st, const char *user, int64_t now)
{
    struct grant_record g[USER_CLI_GRANTS];
    char a[32], b[32];
    int n = 0;

    if (store_grant_list(st, user, USER_CLI_GRANTS, g, &n) != ERR_OK || n == 0) {
        fprintf(out, "grants:        none\n");
        return;
    }
    fprintf(out, "grants:\n");
    for (int i = 0; i < n; i++) {
        bool active = grant_in_force(&g[i], now);
        fprintf(out, "  %s  %-10s %s .. %s  %s%s%s\n", esc(g[i].id), esc(g[i].tier),
                when(g[i].starts_at, a), g[i].ends_at ? when(g[i].ends_at, b) : "no end",
                g[i].revoked_at ? "revoked"
                : active        ? "in force"
                                : "not in force",
                g[i].reason[0] ? "  " : "", esc(g[i].reason));
    }
}

static void print_usage(FILE *out, struct store *st, const struct tier_catalog *cat,
                        const struct tier *t, const char *user, struct quota_period period,
                        int64_t now)
{
    char a[32], b[32];

    fprintf(out, "usage:\n");
    for (size_t i = 0; i < cat->quota_count; i++) {
        const struct tier_quota *q = &cat->quotas[i];
        struct quota_span span = quota_span_of(q->window, period, now);
        int64_t used = 0;
        if (store_usage_get(st, user, q->id, span.start, &used) != ERR_OK)
            used = -1;
        fprintf(out, "  %-14s %lld of ", q->id, (long long)used);
        if (t->limits[i] < 0)
            fprintf(out, "unlimited");
        else
            fprintf(out, "%lld", (long long)t->limits[i]);
        fprintf(out, "  (%s %s .. %s)\n", quota_window_name(span.counted), when(span.start, a),
                when(span.end, b));
    }
}

/* Extra units granted: this and other windows', and balances. */
static void print_extras(FILE *out, struct store *st, const char *user)
{
    struct quota_extra x[USER_CLI_EXTRAS];
    char a[32];
    int n = 0;

    if (store_quota_extras(st, user, USER_CLI_EXTRAS, x, &n) != ERR_OK || n == 0)
        return;
    fprintf(out, "extra units:\n");
    for (int i = 0; i < n; i++)
        if (x[i].window_start == QUOTA_BALANCE)
            fprintf(out, "  %-14s balance %lld\n", esc(x[i].quota), (long long)x[i].units);
        else
            fprintf(out, "  %-14s +%lld for the window from %s (%lld drawn from the balance)\n",
                    esc(x[i].quota), (long long)x[i].units, when(x[i].window_start, a),
                    (long long)x[i].taken);
}

static void print_ledger(FILE *out, struct store *st, const char *user)
{
    struct ledger_entry l[USER_CLI_LEDGER];
    char a[32];
    int n = 0;

    if (store_ledger_list(st, user, NULL, 0, USER_CLI_LEDGER, l, &n) != ERR_OK || n == 0) {
        fprintf(out, "ledger:        none\n");
        return;
    }
    fprintf(out, "ledger (newest %d):\n", USER_CLI_LEDGER);
    for (int i = 0; i < n; i++)
        fprintf(out, "  #%lld %s  %-7s %-14s %6lld  used after %lld  balance %+lld  %s %s\n",
                (long long)l[i].id, when(l[i].created_ms / 1000, a), esc(l[i].kind),
                esc(l[i].quota), (long long)l[i].amount, (long long)l[i].used_after,
                (long long)l[i].balance, l[i].request_id[0] ? esc(l[i].request_id) : "-",
                l[i].idem_key[0] ? esc(l[i].idem_key) : esc(l[i].reason));
}

/* The newest outgoing events whose payload names the user, with their delivery state. */
static void print_outbox(FILE *out, struct store *st, const char *user)
{
    struct outbox_event *list = xcalloc(USER_CLI_SCAN, sizeof(*list));
    char needle[USER_ID_MAX + 16], a[32];
    int n = 0, shown = 0;

    (void)snprintf(needle, sizeof(needle), "\"user_id\":\"%s\"", user);
    if (store_outbox_list(st, false, USER_CLI_SCAN, list, &n) != ERR_OK)
        n = 0;
    fprintf(out, "outgoing events (the user's among the newest %d):\n", USER_CLI_SCAN);
    for (int i = 0; i < n && shown < USER_CLI_EVENTS; i++) {
        if (!strstr(list[i].payload, needle))
            continue;
        fprintf(out, "  %s  %-28s %-9s %d attempt(s)  %s%s%s\n", esc(list[i].id), esc(list[i].type),
                esc(list[i].status), list[i].attempts,
                when(list[i].delivered_at ? list[i].delivered_at : list[i].created_at, a),
                list[i].last_error[0] ? "  " : "", esc(list[i].last_error));
        shown++;
    }
    if (!shown)
        fprintf(out, "  none\n");
    free(list);
}

static void print_invoices(FILE *out, struct store *st, const char *user)
{
    struct invoice inv[USER_CLI_INVOICES];
    char a[32];
    int n = 0;

    if (store_invoice_list(st, user, USER_CLI_INVOICES, inv, &n) != ERR_OK || n == 0) {
        fprintf(out, "invoices:      none\n");
        return;
    }
    fprintf(out, "invoices:\n");
    for (int i = 0; i < n; i++)
        fprintf(out, "  %s  %-13s %lld %s due, %lld paid  %s\n", esc(inv[i].id), esc(inv[i].status),
                (long long)inv[i].amount_due, esc(inv[i].currency), (long long)inv[i].amount_paid,
                when(inv[i].created, a));
}

/* The newest events whose body names the user or the customer. */
static void print_events(FILE *out, struct store *st, const char *user, const char *customer)
{
    struct webhook_event *list = xcalloc(USER_CLI_SCAN, sizeof(*list));
    char a[32];
    int n = 0, shown = 0;

    if (store_event_list(st, false, USER_CLI_SCAN, list, &n) != ERR_OK)
        n = 0;
    fprintf(out, "events (the user's among the newest %d):\n", USER_CLI_SCAN);
    for (int i = 0; i < n && shown < USER_CLI_EVENTS; i++) {
        struct webhook_event e;
        char *raw = NULL;
        size_t len = 0;
        bool mine = false;
        if (store_event_get_raw(st, list[i].id, &e, &raw, &len) == ERR_OK && raw)
            mine = strstr(raw, user) || (customer[0] && strstr(raw, customer));
        free(raw);
        if (!mine)
            continue;
        fprintf(out, "  %s  %-40s %-8s %s%s%s\n", esc(list[i].id), esc(list[i].type),
                esc(list[i].status), when(list[i].created, a), list[i].last_error[0] ? "  " : "",
                esc(list[i].last_error));
        shown++;
    }
    if (!shown)
        fprintf(out, "  none\n");
    free(list);
}

const char *user_cli_arg(int argc, char **argv)
{
    const char *user = argc == 2 && argv[1][0] != '-'            ? argv[1]
                       : argc == 3 && strcmp(argv[1], "--") == 0 ? argv[2]
                                                                 : NULL;

    return user && user[0] && strlen(user) < USER_ID_MAX ? user : NULL;
}

int user_cli_run(const struct api *api, int argc, char **argv, FILE *out, FILE *err)
{
    const char *user = user_cli_arg(argc, argv);
    const struct tier *tier;
    struct quota_period period = { 0 };
    struct subscription s;
    struct customer c;
    struct grant_record g;
    struct entitlement e;
    bool granted = false;
    int64_t now = clock_now();

    if (!user) {
        fprintf(err, "usage: subgate user [--] ID\n");
        return 2;
    }
    tier = tier_catalog_default(api->tiers);
    fprintf(out, "user:          %s\n", esc(user));
    print_customer(out, api->store, user, &c);
    if (print_subscription(out, api->store, user, &s)) {
        e = entitlement_of(&s, now, api->cfg->past_due_grace_days * DAY_S);
        if (e.grants && tier_catalog_find(api->tiers, s.tier)) {
            tier = tier_catalog_find(api->tiers, s.tier);
            period = (struct quota_period){ s.current_period_start, s.current_period_end };
        }
    }
    if (grants_effective_tier(api, user, now, &tier, &g, &granted) != ERR_OK) {
        fprintf(err, "subgate: cannot read the grants\n");
        return 1;
    }
    fprintf(out, "tier now:      %s (%s)\n", tier->id,
            granted                                    ? "granted"
            : tier == tier_catalog_default(api->tiers) ? "default"
                                                       : "Stripe");
    print_grants(out, api->store, user, now);
    print_usage(out, api->store, api->tiers, tier, user, period, now);
    print_extras(out, api->store, user);
    print_ledger(out, api->store, user);
    print_invoices(out, api->store, user);
    print_events(out, api->store, user, c.stripe_customer_id);
    print_outbox(out, api->store, user);
    return 0;
}
