/*
 * store.h: the durable local view of billing state (customers, subscriptions, invoices, usage
 * counters, webhook inbox), behind one interface whatever the database (SPEC sections 5 and 6).
 */
#ifndef SUBGATE_STORE_STORE_H
#define SUBGATE_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "base/err.h"
#include "billing/records.h"

/* An open database: a small pool of connections, safe to call from several threads at once. */
struct store;

/* One received Stripe webhook event, as kept in the inbox. */
struct webhook_event {
    char id[STRIPE_ID_MAX]; /* evt_... */
    char type[128];         /* "customer.subscription.updated", ... */
    int64_t created;        /* Stripe's event `created` */
    char status[16];        /* "applied", "failed" or "ignored" */
    int attempts;           /* how many times applying it was tried */
    char last_error[256];   /* "" when none */
    int64_t received_at;    /* when subgate first stored it */
};

/*
 * Opens the database named by url: "sqlite:PATH" (the parent directory is created when missing)
 * or "sqlite::memory:" (a private in-memory database, for tests). "postgres://..." and
 * "postgresql://..." answer ERR_UNAVAILABLE until that backend exists; any other scheme is
 * ERR_INVALID. pool_size is how many connections to keep: the server passes its thread count + 1.
 * On failure writes one line into errbuf (git style: "cannot open database 'var/x.db': <cause>")
 * and returns ERR_STORE, ERR_INVALID or ERR_UNAVAILABLE. Free the store with store_close().
 */
MUST_CHECK enum err store_open(const char *url, int pool_size, struct store **out, char *errbuf,
                               size_t errlen);

/* Stops background work, closes every connection and frees st. NULL is a no-op. */
void store_close(struct store *st);

/* "sqlite", ...: a static string. */
const char *store_backend_name(const struct store *st);

/*
 * Applies the pending schema migrations in version order, each in its own transaction together
 * with the bump of the schema version; *applied = how many ran here. Safe when several processes
 * migrate at once: each migration runs exactly once. A database whose version is newer than this
 * binary knows: ERR_STORE, with the versions in errbuf.
 */
MUST_CHECK enum err store_migrate(struct store *st, int *applied, char *errbuf, size_t errlen);

/* The schema version the database is at (0 when never migrated). */
MUST_CHECK enum err store_schema_version(struct store *st, int *version);

/* The newest schema version this binary knows. */
int store_schema_version_latest(const struct store *st);

/* ERR_OK when the database is reachable and answering; ERR_STORE otherwise. */
MUST_CHECK enum err store_ping(struct store *st);

/*
 * Domain operations. Each is atomic, and fails with ERR_INVALID, before touching the database,
 * when a string argument or record field is empty where required or does not fit its record
 * field, and with ERR_STORE when the database fails.
 */

/* ERR_NOT_FOUND when the user has no customer. */
MUST_CHECK enum err store_customer_get(struct store *st, const char *user_id, struct customer *out);
MUST_CHECK enum err store_customer_get_by_stripe_id(struct store *st,
                                                    const char *stripe_customer_id,
                                                    struct customer *out);

/* ERR_CONFLICT when the user, or the Stripe customer id, already has a customer. */
MUST_CHECK enum err store_customer_insert(struct store *st, const struct customer *c);

/* Records that the user had their one trial; ERR_NOT_FOUND when there is no such customer. */
MUST_CHECK enum err store_customer_mark_trial(struct store *st, const char *user_id);

/*
 * Inserts the subscription, or overwrites every field of the one with the same id. Stamps it
 * with clock_now() as the time it was last updated here.
 */
MUST_CHECK enum err store_subscription_upsert(struct store *st, const struct subscription *s);

/*
 * Stores s as the subscription's state unless the stored state is newer by the ordering rule
 * of billing/ (TODO(#4): subscription_state_is_newer), atomically: two callers applying states
 * of one subscription at once end with the newer one. *applied tells whether s was stored.
 * Webhook events and answers fetched from Stripe (checkout success, cancel, sync) all go
 * through here, so their order of arrival never matters.
 */
MUST_CHECK enum err store_subscription_apply(struct store *st, const struct subscription *s,
                                             bool *applied);

/* ERR_NOT_FOUND when there is no subscription with that id. */
MUST_CHECK enum err store_subscription_get(struct store *st, const char *id,
                                           struct subscription *out);

/*
 * The user's most relevant subscription: a live one (active, trialing, past_due) first, else
 * the most recently updated (ties: the newer Stripe state, then the greater id).
 * ERR_NOT_FOUND when the user has none.
 */
MUST_CHECK enum err store_subscription_get_for_user(struct store *st, const char *user_id,
                                                    struct subscription *out);

/* Inserts the invoice, or overwrites every field of the one with the same id. */
MUST_CHECK enum err store_invoice_upsert(struct store *st, const struct invoice *inv);

/*
 * The user's invoices, newest first (created descending, then id descending). out has room for
 * max entries (max >= 0); *n = how many were written.
 */
MUST_CHECK enum err store_invoice_list(struct store *st, const char *user_id, int max,
                                       struct invoice *out, int *n);

/* Usage counters are keyed (user_id, quota, window_start). *used = 0 when never consumed. */
MUST_CHECK enum err store_usage_get(struct store *st, const char *user_id, const char *quota,
                                    int64_t window_start, int64_t *used);

/*
 * Grants and records g->n units (n > 0) in one atomic step iff used + n <= g->limit (a limit
 * < 0 is unlimited: always granted); otherwise *granted = false and nothing changes.
 * *used_after = the counter right after the call. However many threads or processes consume
 * at once, a counter never passes its limit and a granted unit is never lost.
 */
MUST_CHECK enum err store_usage_consume(struct store *st, const struct usage_grant *g,
                                        bool *granted, int64_t *used_after);

/* ERR_NOT_FOUND when no event with that id was received. */
MUST_CHECK enum err store_event_get(struct store *st, const char *id, struct webhook_event *out);

#endif /* SUBGATE_STORE_STORE_H */
