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
#include "billing/events.h"
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
    int64_t applied_at;     /* when its effect was last applied; 0 when never */
};

/* Why an event is being stored: Stripe delivering it, or an operator replaying it. */
enum store_event_mode {
    STORE_EVENT_RECEIVE, /* an id already applied or ignored is a duplicate: nothing happens */
    STORE_EVENT_REPLAY,  /* applied again whatever its status (the rules make that idempotent) */
};

/* What store_event_record_apply did. */
enum store_event_result {
    STORE_EVENT_APPLIED,   /* recorded as applied, its effect stored */
    STORE_EVENT_IGNORED,   /* recorded as ignored: a type without effect */
    STORE_EVENT_DUPLICATE, /* applied or ignored before (receive mode): nothing changed */
};

/* An event to record and apply. All borrowed for the duration of the call. */
struct store_event_in {
    const struct billing_event *ev; /* parsed, with the tier of ev->sub already resolved */
    const char *raw;                /* the body as Stripe signed it, kept for replay */
    size_t raw_len;
    enum store_event_mode mode;
    /*
     * Out (may be NULL): set when the event's subscription state and the stored one carry the
     * same Stripe second but differ. Events of one second cannot be ordered (a test clock
     * stamps everything with its frozen time), so the caller reads the subscription from
     * Stripe and stores that answer (glue_subscription_store_answer), which wins the tie.
     */
    bool *same_second;
};

/*
 * Opens the database named by url: "sqlite:PATH" (the parent directory is created when missing),
 * "sqlite::memory:" (a private in-memory database, for tests), or a PostgreSQL URL
 * "postgres://user:password@host:port/db?..." ("postgresql://" too; libpq's URL syntax); any
 * other scheme is ERR_INVALID. pool_size is how many connections to keep: the server passes its
 * thread count + 1. On failure writes one line into errbuf (git style: "cannot open database
 * 'var/x.db': <cause>", never with the URL's password) and returns ERR_STORE, ERR_INVALID or
 * ERR_UNAVAILABLE (a PostgreSQL server that cannot be reached). Free the store with store_close().
 * On PostgreSQL, an operation that loses its connection (the server restarting, say) fails with
 * ERR_UNAVAILABLE within seconds, and the connection is reset before the next one.
 */
MUST_CHECK enum err store_open(const char *url, int pool_size, struct store **out, char *errbuf,
                               size_t errlen);

/* Stops background work, closes every connection and frees st. NULL is a no-op. */
void store_close(struct store *st);

/* "sqlite", ...: a static string. */
const char *store_backend_name(const struct store *st);

/* The entitlement cache's settings (ENTITLEMENT_CACHE_USERS, _TTL_MS, _LISTEN). */
struct store_cache_params {
    size_t users;   /* entries at the most (rounded up to a multiple of 4); 0: no cache */
    int64_t ttl_ms; /* how long an entry is used after the read that filled it began */
    bool listen;    /* PostgreSQL: be told of other processes' writes as they commit */
};

/*
 * Keeps in memory what store_subscription_get_for_user answers for each user, so a hot read
 * costs no database round trip. This process's writes of a user's subscriptions drop the
 * user's entry as soon as they commit (and a read that began before such a write never caches
 * what it read); another process's are seen within p->ttl_ms, and on PostgreSQL with p->listen
 * within milliseconds, by LISTEN/NOTIFY (see docs/ARCHITECTURE.md). The usage counters and
 * extra units store_usage_read_many reads are kept the same way, with the same bounds: dropped
 * after this process's every change of them, and told by NOTIFY of another's. Call once, after
 * store_open and store_migrate, before the store is shared between threads.
 */
void store_cache_start(struct store *st, const struct store_cache_params *p);

/*
 * Group commit (STORE_GROUP_COMMIT), on from store_open: concurrent writes (consumes, tracks,
 * webhook records, every other write) are committed together, each in a savepoint of its own
 * inside one transaction per batch, and each answered once its batch has committed. Off, every
 * write commits alone. Switch it before the store is shared between threads.
 */
void store_group_commit_set(struct store *st, bool on);

/*
 * Where a fiber's own round trips go (PostgreSQL's writes as fibers of one thread): submit(ctx,
 * fn, arg) runs fn(arg) on another thread and returns true, or returns false (nothing run). A
 * read, or a write outside a batch, made on a fiber is handed to it, and the fiber waits parked
 * while its thread goes on with the other fibers, so a round trip holds only its own fiber;
 * refused, it runs on the fiber's thread. NULL (the default): every run on its caller's thread,
 * as SQLite's microseconds want. Set before the store is shared between threads.
 */
typedef bool (*store_away_fn)(void *ctx, void (*fn)(void *arg), void *arg);

void store_away_set(struct store *st, store_away_fn submit, void *ctx);

/*
 * How many writes have run, and in how many commits (batches; a write alone is one); pipelined:
 * how many writes had their first statement sent together with others' (PostgreSQL).
 */
struct store_group_stats {
    uint64_t commits;
    uint64_t units;
    uint64_t pipelined;
};

void store_group_stats_get(struct store *st, struct store_group_stats *out);

/*
 * For tests: the next n batches fail where their COMMIT would, after every write in them ran,
 * and are rolled back; a write alone goes through the batch path meanwhile.
 */
void store_group_fail_commits(struct store *st, int n);

/*
 * For tests: in the next n batches that pipeline, the writes are handed each other's results
 * (the first write the second's, the second the first's, and so on), as writes whose
 * statements are not the same twice would be; the batch must find it and run them again
 * without the pipeline.
 */
void store_group_skew_pipelines(struct store *st, int n);

/*
 * For tests: each batch waits us microseconds before it runs, as a commit on a slow disk would,
 * so that writers arriving meanwhile queue for the next batch (0: no wait).
 */
void store_group_slow_commits(struct store *st, int us);

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

/*
 * ERR_OK unless the last write found the storage unavailable (disk full, read-only): then a
 * probe write tells whether it works again (ERR_OK, and the storage counts as working) or not
 * (ERR_UNAVAILABLE).
 */
MUST_CHECK enum err store_writable(struct store *st, int64_t now);

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

/*
 * Links c->user_id and c->stripe_customer_id unless either is linked already (the existing link
 * is kept: the rule of every path that learns a link, webhooks included); *linked tells whether
 * this call made the link.
 */
MUST_CHECK enum err store_customer_link(struct store *st, const struct customer *c, bool *linked);

/* Records that the user had their one trial; ERR_NOT_FOUND when there is no such customer. */
MUST_CHECK enum err store_customer_mark_trial(struct store *st, const char *user_id);

/*
 * Inserts the subscription, or overwrites every field of the one with the same id. Stamps it
 * with clock_now() as the time it was last updated here.
 */
MUST_CHECK enum err store_subscription_upsert(struct store *st, const struct subscription *s);

/*
 * Stores s as the subscription's state unless the stored state is newer by the ordering rule
 * of billing/order.h (subscription_state_is_newer), atomically: two callers applying states
 * of one subscription at once end with the newer one. *applied tells whether s was stored.
 * past_due_since is computed here (subscription_state_merge); the value in s is ignored.
 * Webhook events and answers fetched from Stripe (checkout success, cancel, sync) all go
 * through here, so their order of arrival never matters: set s->stripe_updated to the event's
 * `created`, or to the time the object was fetched. A subscription never changes hands:
 * ERR_CONFLICT (nothing stored) when the stored one belongs to another user.
 */
MUST_CHECK enum err store_subscription_apply(struct store *st, const struct subscription *s,
                                             bool *applied);

/* ERR_NOT_FOUND when there is no subscription with that id. */
MUST_CHECK enum err store_subscription_get(struct store *st, const char *id,
                                           struct subscription *out);

/*
 * Stores a schedule's state unless the stored one is newer (schedule_state_is_newer), atomically;
 * *applied tells whether it was stored. Events and answers from Stripe both go through here.
 */
MUST_CHECK enum err store_schedule_apply(struct store *st, const struct schedule_record *s,
                                         bool *applied);

/* Tier grants (issue #15). ERR_CONFLICT when the id is taken. */
MUST_CHECK enum err store_grant_insert(struct store *st, const struct grant_record *g);

/* ERR_NOT_FOUND when there is no grant with that id. */
MUST_CHECK enum err store_grant_get(struct store *st, const char *id, struct grant_record *out);

/*
 * Revokes the grant at `at` unless it is revoked already (*revoked: this call revoked it);
 * *out is the grant after. ERR_NOT_FOUND when there is none.
 */
MUST_CHECK enum err store_grant_revoke(struct store *st, const char *id, int64_t at, bool *revoked,
                                       struct grant_record *out);

/*
 * Announces the grants' clock transitions due at now (a start later than the grant was made, an
 * end): for each, once across instances, subscription.tier_changed when the user's tier at the
 * transition differs from the tier just before it (nothing when the outbox is off). *n: how
 * many transitions were looked at (at most 64 a call; call again while it is 64).
 */
MUST_CHECK enum err store_grant_transitions(struct store *st, int64_t now, int *n);

/*
 * The same for past-due subscriptions whose grace (PAST_DUE_GRACE_DAYS, from the outbox's
 * configuration) ended by the clock at or before now: subscription.tier_changed once, when the
 * tier at the end of grace differs from the tier just before it.
 */
MUST_CHECK enum err store_grace_transitions(struct store *st, int64_t now, int *n);

/* The user's grants, newest first: out has room for max; *n written. */
MUST_CHECK enum err store_grant_list(struct store *st, const char *user_id, int max,
                                     struct grant_record *out, int *n);

/* What store_grant_best looks for, and what it found. */
struct grant_query {
    const char *user_id;
    int64_t now;
    /* "a is better than b" */
    bool (*better)(const struct grant_record *a, const struct grant_record *b, const void *ctx);
    const void *ctx;
    struct grant_record best; /* out: the best grant in force, when found */
    bool found;               /* out */
};

/*
 * The best grant of q->user_id in force at q->now (started, not ended, not revoked) by
 * q->better. Reads from a snapshot of every grant in force, read again when it is older than
 * ttl_ms (0: every call) or after this process wrote a grant, so another process's grants show
 * within ttl_ms.
 */
MUST_CHECK enum err store_grant_best(struct store *st, int64_t ttl_ms, struct grant_query *q);

/* ERR_NOT_FOUND when there is no schedule with that id. */
MUST_CHECK enum err store_schedule_get(struct store *st, const char *id,
                                       struct schedule_record *out);

/*
 * The user's most relevant subscription: a live one (active, trialing, past_due) first, else
 * the most recently updated (ties: the newer Stripe state, then the greater id).
 * ERR_NOT_FOUND when the user has none.
 */
MUST_CHECK enum err store_subscription_get_for_user(struct store *st, const char *user_id,
                                                    struct subscription *out);

/* ERR_NOT_FOUND when there is no invoice with that id. */
MUST_CHECK enum err store_invoice_get(struct store *st, const char *id, struct invoice *out);

/* Inserts the invoice, or overwrites every field of the one with the same id. */
MUST_CHECK enum err store_invoice_upsert(struct store *st, const struct invoice *inv);

/*
 * Stores inv unless the stored invoice of that id is further along by billing/order.h
 * (invoice_state_supersedes), atomically; *applied tells whether it was stored. Webhooks and
 * sync both go through here, so a late or fetched state never moves an invoice back. An
 * invoice stored for another user is ERR_CONFLICT, nothing written: it never changes hands.
 */
MUST_CHECK enum err store_invoice_apply(struct store *st, const struct invoice *inv, bool *applied);

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
 * n counters of one user read together (a catalogue's in one statement): used[i] for
 * (quotas[i], window_starts[i]).
 */
MUST_CHECK enum err store_usage_get_many(struct store *st, const char *user_id, size_t n,
                                         const char *const *quotas, const int64_t *window_starts,
                                         int64_t *used);

/*
 * Grants and records g->n units (n > 0) in one atomic step iff used + n <= g->limit (a limit
 * < 0 is unlimited: always granted); otherwise *granted = false and nothing changes.
 * *used_after = the counter right after the call. However many threads or processes consume
 * at once, a counter never passes its limit and a granted unit is never lost.
 */
MUST_CHECK enum err store_usage_consume(struct store *st, const struct usage_grant *g,
                                        bool *granted, int64_t *used_after);

/*
 * store_usage_consume answering the whole outcome, with the window's extra units and the
 * balance (o's limit, window_start, resets_at and tier as the caller set them).
 */
MUST_CHECK enum err store_usage_meter(struct store *st, const struct usage_grant *g,
                                      struct usage_outcome *o);

#define STORE_METER_ALL_MAX 8 /* grants store_usage_meter_all takes at once */

/*
 * store_usage_meter for n (1..STORE_METER_ALL_MAX) grants, all or nothing, in one transaction:
 * they are metered in order, and when one is refused the ones granted before it are undone
 * with it (no other request ever sees them spent). *refused is the index of the refused grant,
 * or n when every one was granted. Each o[i] is as store_usage_meter leaves it, up to and
 * including the refused one (the rest are left as asked): a granted one before a refusal
 * shows what it would have been. A refusal at the first grant commits what a lone refusal does.
 */
MUST_CHECK enum err store_usage_meter_all(struct store *st, const struct usage_grant *g,
                                          struct usage_outcome *o, size_t n, size_t *refused);

/* One quota's counter as store_usage_read_many reads it. */
struct usage_read {
    int64_t used;
    int64_t extra;   /* the window's extra units */
    int64_t balance; /* the quota's balance */
};

/* store_usage_get_many with each quota's extra units and balance, in one read transaction. */
MUST_CHECK enum err store_usage_read_many(struct store *st, const char *user_id, size_t n,
                                          const char *const *quotas, const int64_t *window_starts,
                                          struct usage_read *out);

/* ERR_NOT_FOUND when no event with that id was received. */
MUST_CHECK enum err store_event_get(struct store *st, const char *id, struct webhook_event *out);

/*
 * Records the event in the inbox and applies its effect in the same transaction (SPEC §5):
 *   EVENT_SUBSCRIPTION: the state through the ordering rule (as store_subscription_apply); the
 *     user is the one the stored customer ev->customer_id is linked to, else ev->sub.user_id
 *     (which, when both are there, must be the same: ERR_CONFLICT otherwise);
 *     the user and customer are linked when not yet; a state with a trial marks the
 *     customer's had_trial;
 *   EVENT_INVOICE: the invoice, unless the stored one is further along (invoice_state_supersedes),
 *     for the user of the customer;
 *   EVENT_CHECKOUT: links ev->user_id and ev->customer_id when neither is linked yet (an
 *     existing link is kept), and applies the session's subscription when it was expanded;
 *   EVENT_SCHEDULE: the schedule, as store_schedule_apply;
 *   EVENT_IGNORED: recorded only.
 * A failed event being delivered again is applied again. When applying fails, everything is
 * rolled back, the event is recorded as failed in a transaction of its own (attempts + 1,
 * last_error), and the error is returned with a line in errbuf: ERR_NOT_FOUND when the
 * user of the customer is not known yet (Stripe's retry will find it once the customer is
 * linked), ERR_CONFLICT when the event names another user than the customer's or the stored
 * subscription's, ERR_STORE when the database fails.
 */
MUST_CHECK enum err store_event_record_apply(struct store *st, const struct store_event_in *in,
                                             enum store_event_result *result, char *errbuf,
                                             size_t errlen);

/*
 * Records an event that could not be applied (its object did not parse, say) as failed:
 * attempts + 1, last_error = why (cut to fit). Nothing else changes.
 */
MUST_CHECK enum err store_event_record_failed(struct store *st, const struct store_event_in *in,
                                              const char *why);

/*
 * The most recently received events (received_at descending, then id descending), only the
 * failed ones when failed_only. out has room for max entries (max >= 0); *n = how many.
 */
MUST_CHECK enum err store_event_list(struct store *st, bool failed_only, int max,
                                     struct webhook_event *out, int *n);

/*
 * The event and its raw body, for replay: *raw is a new NUL-terminated string of *raw_len
 * bytes (free with free()). ERR_NOT_FOUND when no event with that id was received.
 */
MUST_CHECK enum err store_event_get_raw(struct store *st, const char *id, struct webhook_event *out,
                                        char **raw, size_t *raw_len);

/* A checkout session subgate opened for a user (issue #10: one open per user). */
struct checkout_record {
    char id[STRIPE_ID_MAX]; /* cs_... */
    char user_id[USER_ID_MAX];
    char fingerprint[80]; /* hex digest of what was asked: the same ask gets this session back */
    char idem_key[128];   /* the Idempotency-Key it was created with; holds the trial it carries */
    char url[URL_MAX];
    int64_t trial_days; /* the trial it carries: 0 for none */
    char status[16];    /* open, complete, expired */
    int64_t created;
    int64_t expires_at;
};

/* The user's open checkout session, else the newest; ERR_NOT_FOUND when none. */
MUST_CHECK enum err store_checkout_latest(struct store *st, const char *user_id,
                                          struct checkout_record *out);

/*
 * Records c as the user's open session (or, with status "expired", one made and expired at
 * once), in one transaction, after marking the user's open ones past their expires_at (by
 * c->created) expired. ERR_CONFLICT when the user has another open session, or c's id is
 * recorded already: *other (may be NULL) is then the user's newest.
 */
MUST_CHECK enum err store_checkout_open(struct store *st, const struct checkout_record *c,
                                        struct checkout_record *other);

/*
 * Closes an open session: status "complete" or "expired" (an expired session no longer holds
 * the user's trial). Nothing happens when it is not open (or not subgate's): *closed says.
 */
MUST_CHECK enum err store_checkout_close(struct store *st, const char *id, const char *status,
                                         bool *closed);

/*
 * Reserves the user's one trial for the checkout about to be created with idempotency key
 * key, atomically: *reserved = true when the user never had a trial and no other checkout
 * holds it (a holder is gone when its session expired, or when it made no session within an
 * hour). The same key reserves again (a retry). ERR_NOT_FOUND when the user has no customer.
 */
MUST_CHECK enum err store_trial_reserve(struct store *st, const char *user_id, const char *key,
                                        int64_t now, bool *reserved);

/* A second live subscription of a user, found anyway (paid in two tabs, made outside subgate). */
struct duplicate_record {
    char id[STRIPE_ID_MAX]; /* the newer one: to cancel and refund */
    char user_id[USER_ID_MAX];
    char kept_id[STRIPE_ID_MAX]; /* the older one, kept */
    char status[16];             /* pending, resolved */
    int64_t refunded;            /* minor units refunded */
    int attempts;
    char last_error[256];
    int64_t detected_at;
    int64_t resolved_at;
};

/*
 * Whether a duplicate subscription waits to be undone, for a look after every webhook: *any
 * false without a read when one found none less than a second ago and no write of this process
 * has recorded one since that read began; another process's shows within a second.
 */
MUST_CHECK enum err store_duplicate_pending_any(struct store *st, bool *any);

/* The duplicates recorded, pending ones only when pending_only, oldest first; *n how many. */
MUST_CHECK enum err store_duplicate_list(struct store *st, bool pending_only, int max,
                                         struct duplicate_record *out, int *n);

/* Stores d's status, refunded, attempts, last_error and resolved_at. */
MUST_CHECK enum err store_duplicate_update(struct store *st, const struct duplicate_record *d);

#define IDEMPOTENCY_KEY_MAX 512 /* bytes of a scoped key or request hash, terminator included */

/* What identifies a request carrying an idempotency key. All borrowed for the call. */
struct store_idempotency {
    const char *key;          /* unique per caller: the caller scopes it (service, user, key) */
    const char *scope;        /* the operation: "usage.consume", "usage.track" */
    const char *request_hash; /* digest of the request: the same key with another is refused */
    int64_t now;              /* when the key was first used */
};

/*
 * store_usage_consume with an idempotency key, in one transaction. The caller fills what the
 * answer shows besides the decision (o->limit, window_start, resets_at, tier); when k->key is
 * new, this consumes as store_usage_consume does, settles o (granted, used, remaining:
 * gate_outcome_settle) and stores the whole outcome under the key before committing, so
 * concurrent requests with one key count once. When the key was used before for the same
 * scope and request_hash, *o is the stored outcome, *replayed = true, and nothing is consumed.
 * ERR_CONFLICT (nothing changes) when the key was used with another scope or request_hash.
 */
MUST_CHECK enum err store_usage_consume_once(struct store *st, const struct usage_grant *g,
                                             const struct store_idempotency *k,
                                             struct usage_outcome *o, bool *replayed);

/*
 * Gives g->n units (n > 0) back to the counter of g's window, atomically, never below zero (for
 * work that failed or used less than it reserved); *used_after is the counter after. g->limit
 * is ignored. With k (may be NULL: no key), as store_usage_consume_once: a retry with the same
 * key refunds nothing more and gets the first outcome; o is filled as there (granted = true).
 */
MUST_CHECK enum err store_usage_refund(struct store *st, const struct usage_grant *g,
                                       const struct store_idempotency *k, struct usage_outcome *o,
                                       bool *replayed);

/*
 * Deletes the idempotency records first used before `before` (Stripe keeps keys 24 hours), in
 * batches; *deleted = how many. A thread of the store does it every hour (store_open starts it),
 * so no request pays for it; this is the same step, for tests and tools.
 */
MUST_CHECK enum err store_idempotency_prune(struct store *st, int64_t before, int *deleted);

/*
 * The usage ledger and extra quota units (issue #15). With the ledger on (store_ledger_set;
 * off from store_open), every granted consume, track and every refund writes an entry in its
 * own transaction; grants of extra units always do. A consume past the tier's limit draws on
 * the window's extra units, then on the quota's balance (store_usage_consume); a refund gives
 * the balance units its window drew back first.
 */
void store_ledger_set(struct store *st, bool on);

/*
 * The user's ledger entries, newest first: of quota only unless it is NULL or "", with ids
 * below before (0: from the newest). out has room for max; *n written.
 */
MUST_CHECK enum err store_ledger_list(struct store *st, const char *user_id, const char *quota,
                                      int64_t before, int max, struct ledger_entry *out, int *n);

/* A grant of extra units: its entry, and the tier's limit of the quota (>= 0). */
struct quota_grant_in {
    const struct ledger_entry *e;
    int64_t limit;
};

/*
 * Grants e->amount (> 0) extra units of e->quota to e->user_id: for the window starting at
 * e->window_start, or to the balance (QUOTA_BALANCE), and writes e (kind "grant") to the ledger
 * in the same transaction. *out: the entry as stored (its id), *after: the row after. With
 * e->idem_key, a second call with the same user and key grants nothing: *replayed, and *out is
 * the first entry; ERR_CONFLICT when that entry was another grant (quota, amount, scope, reason).
 * Units for a window that has drawn on the balance past its old allowance (in->limit + its
 * extra units) give those balance units back, as far as the new units cover them.
 */
MUST_CHECK enum err store_quota_grant(struct store *st, const struct quota_grant_in *in,
                                      struct ledger_entry *out, struct quota_extra *after,
                                      bool *replayed);

/* The user's rows of extra units (windows and balances), by quota and window; *n written. */
MUST_CHECK enum err store_quota_extras(struct store *st, const char *user_id, int max,
                                       struct quota_extra *out, int *n);

/*
 * The outbox (issue #15): events for the app, each written in the same transaction as the
 * change that causes it, delivered by one instance's thread (api/outbox.c). Times: created_at
 * and delivered_at in Unix seconds, next_attempt_at and claim_until in Unix milliseconds.
 */
#define OUTBOX_ID_MAX         32   /* "evt_" and 24 hex digits */
#define OUTBOX_PAYLOAD_MAX    2048 /* the whole JSON envelope as it is posted */
#define OUTBOX_THRESHOLDS_MAX 8
#define TIER_MAX_RANKED       16 /* tiers the outbox ranks (TIER_MAX of billing/tiers.h) */

struct outbox_event {
    char id[OUTBOX_ID_MAX];
    char type[48];                    /* "subscription.tier_changed", ... */
    char payload[OUTBOX_PAYLOAD_MAX]; /* {"id","type","created","data"} */
    int64_t created_at;
    int64_t next_attempt_at;
    int attempts;         /* deliveries tried */
    char status[16];      /* "pending", "delivered" or "failed" (given up) */
    char last_error[256]; /* the last attempt's failure; "" when none */
    int64_t delivered_at; /* 0 until delivered */
    char claimed_by[64];  /* the instance delivering it now, "" when none */
    int64_t claim_until;  /* its lease ends */
    char dedupe_key[640]; /* one event per cause */
};

/* What the rules need to write events; set once before serving (store_outbox_configure). */
struct store_outbox_cfg {
    bool enabled;                          /* APP_WEBHOOK_URL is set: rows are written */
    int64_t grace_s;                       /* PAST_DUE_GRACE_DAYS in seconds */
    char default_tier[TIER_ID_MAX];        /* the tier without a granting subscription */
    int thresholds[OUTBOX_THRESHOLDS_MAX]; /* QUOTA_THRESHOLDS, percentages 1-100 */
    size_t threshold_count;
    /* The tiers by rank, lowest first, to tell the best of a subscription and grants. */
    size_t tier_count;
    char tiers[TIER_MAX_RANKED][TIER_ID_MAX];
};

/* Copies cfg into st: events are written from now on when cfg->enabled. */
void store_outbox_configure(struct store *st, const struct store_outbox_cfg *cfg);

/* Writes e unless an event with its dedupe_key exists (*inserted says which); for tests. */
MUST_CHECK enum err store_outbox_insert(struct store *st, const struct outbox_event *e,
                                        bool *inserted);

/*
 * Claims up to max pending events due at now_ms whose lease (if any) has ended, for owner,
 * until now_ms + lease_ms. Each event is claimed by one caller at a time, across processes.
 */
MUST_CHECK enum err store_outbox_claim(struct store *st, const char *owner, int64_t now_ms,
                                       int64_t lease_ms, int max, struct outbox_event *out, int *n);

/*
 * Records the outcome of a claimed event: status, attempts, next_attempt_at, last_error and
 * delivered_at from e, and drops the lease; only while e->claimed_by still holds it (*done).
 */
MUST_CHECK enum err store_outbox_finish(struct store *st, const struct outbox_event *e, bool *done);

/* The most recent events (created_at, id descending), only the failed ones when failed_only. */
MUST_CHECK enum err store_outbox_list(struct store *st, bool failed_only, int max,
                                      struct outbox_event *out, int *n);

/* One event; ERR_NOT_FOUND when none has that id. */
MUST_CHECK enum err store_outbox_get(struct store *st, const char *id, struct outbox_event *out);

/* Makes an event pending and due now with its attempts reset; ERR_NOT_FOUND when none. */
MUST_CHECK enum err store_outbox_replay(struct store *st, const char *id, int64_t now_ms);

#endif /* SUBGATE_STORE_STORE_H */
