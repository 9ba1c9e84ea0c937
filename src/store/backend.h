/*
 * backend.h: what a storage backend implements, and nothing more: a runner that lends a
 * connection to a function (inside one transaction when it writes) and row operations on that
 * connection. Every rule made of several steps (apply a webhook event, apply-if-newer, the
 * idempotent consume, the migration loop) is written once above this table, in store.c,
 * apply.c and keyed.c. Included by those files and the backends only, never by callers.
 */
#ifndef SUBGATE_STORE_BACKEND_H
#define SUBGATE_STORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "base/err.h"
#include "billing/records.h"
#include "billing/status.h"
#include "store/migrations.h"
#include "store/store.h"

/*
 * A connection lent to one run of a store_tx_fn. Each backend defines it in its own files; the
 * code above the table only passes it on to the row operations.
 */
struct store_tx;

struct entcache;    /* entcache.h */
struct store_watch; /* a backend's watcher of other processes' writes */

/* What runs on a lent connection; its result is the run's (ERR_OK commits a transaction). */
typedef enum err (*store_tx_fn)(struct store_tx *tx, void *arg);

enum store_run_kind {
    STORE_RUN_READ,   /* reads only, each statement seeing what is committed */
    STORE_RUN_SINGLE, /* one write statement, committed by itself (no BEGIN/COMMIT) */
    STORE_RUN_WRITE,  /* one transaction: commits when fn returns ERR_OK, else rolls back */
    /*
     * A STORE_RUN_WRITE whose first statement claims a row that no other write touches but by
     * the same claim (a webhook event's id): in a batch it may run before the other writes
     * (group.c pipelines it, as a STORE_RUN_SINGLE's). The backends get STORE_RUN_WRITE.
     */
    STORE_RUN_WRITE_CLAIM,
};

/* A subscription as written: the record, and what is stored beside it. */
struct store_sub_row {
    const struct subscription *sub;
    int64_t updated_at; /* when subgate wrote it */
    bool live;          /* sub_status_is_live(sub->status): the column the user's pick sorts by */
};

/* The row of s as written at now: its live flag from billing/status.c. */
static inline struct store_sub_row store_sub_row_of(const struct subscription *s, int64_t now)
{
    return (struct store_sub_row){ s, now, sub_status_is_live(s->status) };
}

/* One usage counter as usage_list reads it. */
#define USAGE_LIST_MAX 8 /* quotas (and window starts) one usage_list asks about */

struct usage_row {
    char quota[QUOTA_ID_MAX];
    int64_t window_start;
    int64_t used;
};

/* One idempotency record as stored (store_idempotency's key and its decision). */
struct store_keyed_row {
    char scope[QUOTA_ID_MAX];
    char request_hash[128];
    bool decided;                 /* false while the first request is in flight */
    struct usage_outcome outcome; /* when decided */
};

/* What an invoice event reads before it writes (store_ops.invoice_context_get). */
struct store_invoice_context {
    enum err customer; /* ERR_OK: cus is the Stripe customer's link; ERR_NOT_FOUND: none */
    struct customer cus;
    enum err stored; /* ERR_OK: inv is the stored invoice, now locked; ERR_NOT_FOUND: none */
    struct invoice inv;
};

/*
 * Every entry is required. The wrappers above have validated the arguments (strings fit their
 * fields, required ones non-empty, counts in range), so a backend only talks to its database.
 *
 * run: lends a connection to fn. For STORE_RUN_WRITE it begins a transaction in which what fn
 * reads stays true until it commits (a database lock, or row locks taken by the *_get(lock)
 * operations), and runs fn again from the start when the engine asks for a retry (a deadlock
 * or serialization failure), so fn resets its outputs first. When the run fails with
 * ERR_STORE or ERR_UNAVAILABLE and errbuf is non-empty-sized and still "", the engine's own
 * message is written there.
 *
 * The row operations: ERR_NOT_FOUND for a missing row where they read one, ERR_CONFLICT for a
 * unique key taken, ERR_STORE (or ERR_UNAVAILABLE: the server cannot be reached) otherwise.
 */
struct store_ops {
    const char *name;
    void (*close)(struct store *st);
    enum err (*run)(struct store *st, enum store_run_kind kind, store_tx_fn fn, void *arg,
                    char *errbuf, size_t errlen);
    /*
     * Group commit (group.c): the functions of several runs share one STORE_RUN_WRITE
     * transaction, each between unit_begin and unit_end. With savepoint, unit_begin sets a
     * savepoint and unit_end releases it when *unit_err is ERR_OK and the transaction is sound,
     * else rolls back to it; without, both only check. unit_end sets *unit_err to ERR_STORE when
     * fn said ERR_OK over a failed statement, *again when the engine asks for the unit to run
     * again (a deadlock or serialization victim), and writes the engine's message into errbuf
     * as run does. It returns ERR_OK when the transaction can go on, else why it cannot.
     */
    enum err (*unit_begin)(struct store_tx *tx, bool savepoint);
    enum err (*unit_end)(struct store_tx *tx, bool savepoint, enum err *unit_err, bool *again,
                         char *errbuf, size_t errlen);
    /*
     * Pipelining, optional (NULL where the engine has none), in a batch's pass without
     * savepoints. After pipeline_capture(tx, k), the first statement a function sends is not
     * run but recorded as the k-th, and that statement and any after it fail, so the function
     * returns at once having changed nothing; pipeline_capture(tx, -1) ends it. pipeline_send
     * then runs the recorded statements together (one round trip) and keeps their results; *sent
     * is how many. It fails with ERR_UNAVAILABLE when the storage is gone, and with another
     * error when a statement failed (the transaction cannot go on). pipeline_use(tx, k) before the
     * k-th unit runs for real: its first statement takes the result kept if it is exactly the
     * recorded one, and fails if it is another (then the transaction cannot commit).
     * pipeline_use(tx, -1) drops what is left; it fails if a result was left untaken (a statement
     * ran that its unit did not send again), and then the transaction must not commit either. Only
     * a statement that may run before the batch's other units, and apart from the rest of its own
     * unit, may be recorded: group.c records those of STORE_RUN_SINGLE and
     * STORE_RUN_WRITE_CLAIM runs only.
     */
    void (*pipeline_capture)(struct store_tx *tx, int k);
    enum err (*pipeline_send)(struct store_tx *tx, int *sent);
    enum err (*pipeline_use)(struct store_tx *tx, int k);

    /* Schema. migrations: the backend's compiled-in list, in version order. */
    const struct migration *(*migrations)(size_t *count);
    enum err (*schema_version)(struct store_tx *tx, int *version); /* 0: never migrated */
    /* Inside the migration's transaction, before reading the version: serializes migrators. */
    enum err (*migration_lock)(struct store_tx *tx);
    /* Runs m's script and records m->version as the schema version. */
    enum err (*migration_run)(struct store_tx *tx, const struct migration *m);
    enum err (*ping)(struct store_tx *tx);

    /* Customers: the user <-> Stripe customer link. */
    enum err (*customer_get)(struct store_tx *tx, const char *user_id, struct customer *out);
    enum err (*customer_get_by_stripe_id)(struct store_tx *tx, const char *stripe_customer_id,
                                          struct customer *out);
    enum err (*customer_insert)(struct store_tx *tx, const struct customer *c);
    /* Inserts c unless its user or its Stripe customer is linked already: *linked says which. */
    enum err (*customer_insert_new)(struct store_tx *tx, const struct customer *c, bool *linked);
    enum err (*customer_mark_trial)(struct store_tx *tx, const char *user_id, bool *found);

    /*
     * Subscriptions and invoices. *_get with lock = true also locks the row until the end of
     * the transaction (where the engine locks rows); *_insert_new inserts unless the id exists
     * (*inserted says which; a concurrent insert of the same id waits for the first to end).
     */
    enum err (*subscription_get)(struct store_tx *tx, const char *id, bool lock,
                                 struct subscription *out);
    enum err (*subscription_insert_new)(struct store_tx *tx, const struct store_sub_row *row,
                                        bool *inserted);
    enum err (*subscription_put)(struct store_tx *tx, const struct store_sub_row *row);
    /* The user's most relevant: live first, then updated_at, stripe_updated, id descending. */
    enum err (*subscription_get_for_user)(struct store_tx *tx, const char *user_id,
                                          struct subscription *out);
    enum err (*invoice_get)(struct store_tx *tx, const char *id, bool lock, struct invoice *out);
    /*
     * Optional (NULL: the two reads one after the other): customer_get_by_stripe_id and
     * invoice_get(lock) in one statement, each part's ERR_OK or ERR_NOT_FOUND in out.
     */
    enum err (*invoice_context_get)(struct store_tx *tx, const char *stripe_customer_id,
                                    const char *invoice_id, struct store_invoice_context *out);
    enum err (*invoice_insert_new)(struct store_tx *tx, const struct invoice *inv, bool *inserted);
    enum err (*invoice_put)(struct store_tx *tx, const struct invoice *inv);
    enum err (*invoice_list)(struct store_tx *tx, const char *user_id, int max, struct invoice *out,
                             int *n);

    /* Usage counters. ERR_NOT_FOUND from usage_add_within: refused, nothing changed. */
    enum err (*usage_get)(struct store_tx *tx, const char *user_id, const char *quota,
                          int64_t window_start, int64_t *used);
    /*
     * The user's counters of (quotas[i], window_starts[i]) for i < n, 1 <= n <= USAGE_LIST_MAX,
     * in one statement (one read, one snapshot): a row in out[USAGE_LIST_MAX] per pair that has
     * one, in no particular order.
     */
    enum err (*usage_list)(struct store_tx *tx, const char *user_id, size_t n,
                           const char *const *quotas, const int64_t *window_starts,
                           struct usage_row *out, int *k);
    enum err (*usage_add_within)(struct store_tx *tx, const struct usage_grant *g,
                                 int64_t *used_after);
    /* Takes g->n back, never below zero; ERR_NOT_FOUND when the window has no counter. */
    enum err (*usage_sub)(struct store_tx *tx, const struct usage_grant *g, int64_t *used_after);

    /*
     * The webhook inbox. event_claim records the event with status ("applied" or "ignored")
     * unless it is there already and neither failed nor replay: *claimed says which; a
     * concurrent claim of the same id waits for the first transaction to end.
     */
    enum err (*event_get)(struct store_tx *tx, const char *id, struct webhook_event *out);
    enum err (*event_claim)(struct store_tx *tx, const struct store_event_in *in,
                            const char *status, int64_t now, bool *claimed);
    enum err (*event_fail)(struct store_tx *tx, const struct store_event_in *in, int64_t now,
                           const char *why);
    enum err (*event_list)(struct store_tx *tx, bool failed_only, int max,
                           struct webhook_event *out, int *n);
    /* *raw: a new NUL-terminated string of *raw_len bytes, for free(). */
    enum err (*event_raw)(struct store_tx *tx, const char *id, char **raw, size_t *raw_len);

    /*
     * Idempotency records. keyed_claim inserts the key undecided unless it exists (*claimed);
     * a concurrent claim of the same key waits for the first transaction to end.
     */
    enum err (*keyed_claim)(struct store_tx *tx, const struct store_idempotency *k, bool *claimed);
    enum err (*keyed_get)(struct store_tx *tx, const char *key, struct store_keyed_row *out);
    enum err (*keyed_decide)(struct store_tx *tx, const char *key, const struct usage_outcome *o);
    /* Deletes up to max records created before `before`; *deleted = how many. */
    enum err (*keyed_prune)(struct store_tx *tx, int64_t before, int max, int *deleted);

    /*
     * Checkout sessions and trials. checkout_insert: ERR_CONFLICT when the id is taken or the
     * user has an open session. checkout_close: open -> status, *closed says whether it was
     * open. trial_reserve: see store_trial_reserve; stale_before is when a holder without a
     * session is given up.
     */
    enum err (*checkout_latest)(struct store_tx *tx, const char *user_id,
                                struct checkout_record *out);
    enum err (*checkout_expire_stale)(struct store_tx *tx, const char *user_id, int64_t now);
    enum err (*checkout_insert)(struct store_tx *tx, const struct checkout_record *c);
    enum err (*checkout_close)(struct store_tx *tx, const char *id, const char *status,
                               bool *closed);
    enum err (*trial_reserve)(struct store_tx *tx, const char *user_id, const char *key,
                              int64_t now, int64_t stale_before, bool *reserved);

    /*
     * Live subscriptions and duplicates. subscription_list_live: oldest first (Stripe's
     * created, then the order they were first stored in, then id).
     */
    enum err (*subscription_list_live)(struct store_tx *tx, const char *user_id, int max,
                                       struct subscription *out, int *n);
    enum err (*duplicate_insert)(struct store_tx *tx, const struct duplicate_record *d,
                                 bool *inserted);
    enum err (*duplicate_list)(struct store_tx *tx, bool pending_only, int max,
                               struct duplicate_record *out, int *n);
    enum err (*duplicate_update)(struct store_tx *tx, const struct duplicate_record *d);

    /* Writes the one health row (a write that must reach the disk). */
    enum err (*health_touch)(struct store_tx *tx, int64_t now);

    /* Subscription schedules: schedule_get with lock = true also locks the row (see above). */
    enum err (*schedule_get)(struct store_tx *tx, const char *id, bool lock,
                             struct schedule_record *out);
    enum err (*schedule_put)(struct store_tx *tx, const struct schedule_record *s);

    /*
     * Tier grants. grant_insert: ERR_CONFLICT when the id is taken. grant_revoke sets revoked_at
     * unless it is set (*found: the grant exists). grant_list: a user's, newest first; with user
     * "" the grants in force at `at` or later (not revoked, ending after at or never) of every
     * user.
     */
    enum err (*grant_insert)(struct store_tx *tx, const struct grant_record *g);
    enum err (*grant_get)(struct store_tx *tx, const char *id, struct grant_record *out);
    enum err (*grant_revoke)(struct store_tx *tx, const char *id, int64_t at, bool *found);
    enum err (*grant_list)(struct store_tx *tx, const char *user_id, int64_t at, int max,
                           struct grant_record *out, int *n);
    /*
     * grant_due: grants not revoked whose start (when later than their making) or end is at or
     * before now and later than their announced_at. grant_announce: announced_at = at unless it
     * is at or past it already (*claimed: this call set it).
     */
    enum err (*grant_due)(struct store_tx *tx, int64_t now, int max, struct grant_record *out,
                          int *n);
    enum err (*grant_announce)(struct store_tx *tx, const char *id, int64_t at, bool *claimed);
    /*
     * grace_due: past-due subscriptions whose past_due_since + grace_s is at or before now and
     * whose grace_announced is below their past_due_since. grace_announce: grace_announced = at
     * unless it is at or past it (*claimed: this call set it).
     */
    enum err (*grace_due)(struct store_tx *tx, int64_t now, int64_t grace_s, int max,
                          struct subscription *out, int *n);
    enum err (*grace_announce)(struct store_tx *tx, const char *id, int64_t at, bool *claimed);

    /*
     * The outbox (outbox.c). outbox_insert: unless the dedupe_key exists (*inserted).
     * outbox_claim: marks up to max due, unleased pending rows as owner's until lease_until
     * and returns them; concurrent claims never return one row twice (row locks skipped where
     * the engine has them). outbox_finish: the outcome, only while owner holds the lease.
     * outbox_replay: pending, due at now_ms, attempts 0, lease dropped (*found).
     */
    enum err (*outbox_insert)(struct store_tx *tx, const struct outbox_event *e, bool *inserted);
    enum err (*outbox_claim)(struct store_tx *tx, const char *owner, int64_t now_ms,
                             int64_t lease_until, int max, struct outbox_event *out, int *n);
    enum err (*outbox_finish)(struct store_tx *tx, const struct outbox_event *e, bool *done);
    enum err (*outbox_list)(struct store_tx *tx, bool failed_only, int max,
                            struct outbox_event *out, int *n);
    enum err (*outbox_get)(struct store_tx *tx, const char *id, struct outbox_event *out);
    enum err (*outbox_replay)(struct store_tx *tx, const char *id, int64_t now_ms, bool *found);

    /*
     * The usage ledger and extra quota units (usage.c). ledger_insert: *id the new entry's;
     * ERR_CONFLICT when the user has a grant entry with e's idem_key already. ledger_list: the
     * user's entries of quota
     * ("": every quota) with id < before (before <= 0: from the newest), newest first.
     * ledger_grant_get: the user's grant entry made with key. usage_lock: g's counter (0 when
     * there is none), which no other transaction changes until this one ends. extra_get: g's
     * row of window_start (ERR_NOT_FOUND when none), locked as usage_lock when lock. extra_add:
     * adds d->units and d->taken to d's row (made when missing). extra_list: the user's rows.
     */
    enum err (*ledger_insert)(struct store_tx *tx, const struct ledger_entry *e, int64_t *id);
    /*
     * Optional (NULL where the engine has no such statement): usage_add_within and, when it
     * grants, e's entry with used_after the counter after, in one statement, so that it needs
     * no transaction around it. e holds g's user, quota, window start and n (its amount).
     * ERR_NOT_FOUND: refused, nothing written.
     */
    enum err (*usage_add_noted)(struct store_tx *tx, const struct usage_grant *g,
                                const struct ledger_entry *e, int64_t *used_after);
    enum err (*ledger_list)(struct store_tx *tx, const char *user_id, const char *quota,
                            int64_t before, int max, struct ledger_entry *out, int *n);
    enum err (*ledger_grant_get)(struct store_tx *tx, const char *user_id, const char *key,
                                 struct ledger_entry *out);
    enum err (*usage_lock)(struct store_tx *tx, const struct usage_grant *g, int64_t *used);
    enum err (*extra_get)(struct store_tx *tx, const struct usage_grant *g, int64_t window_start,
                          bool lock, struct quota_extra *out);
    enum err (*extra_add)(struct store_tx *tx, const struct quota_extra *d);
    enum err (*extra_list)(struct store_tx *tx, const char *user_id, int max,
                           struct quota_extra *out, int *n);
    /* Whether any user has a row of extra units. */
    enum err (*extra_any)(struct store_tx *tx, bool *any);

    /*
     * Changes made by other processes, for the entitlement cache. watch_start starts a thread
     * of the engine's that calls entcache_invalidate(cache, user) for each subscription write
     * any process commits, soon after it commits, and entcache_clear(cache) whenever it may
     * have missed some; the same in usage_cache (NULL: none) for each change of a user's usage
     * counters or extra units. NULL when the engine tells nothing (the TTL alone bounds
     * staleness). watch_stop stops that thread and frees w (NULL: nothing to do).
     */
    struct store_watch *(*watch_start)(struct store *st, struct entcache *cache,
                                       struct entcache *usage_cache);
    void (*watch_stop)(struct store_watch *w);
};

/* The handle callers hold; a backend embeds it as the first member of its own struct. */
struct store {
    const struct store_ops *ops;
    struct store_maint *maint;      /* the pruning thread (store.c); NULL when not started */
    struct entcache *cache;         /* the entitlement cache (entcache.h); NULL when off */
    struct entcache *usage_cache;   /* the usage counters store_usage_read_many reads (rows.c);
                                       NULL when off */
    struct store_watch *watch;      /* ops->watch_start's, stopped by store_close; NULL when none */
    struct store_group *group;      /* the group commit queue (group.c); NULL: every write alone */
    struct store_grants *grants;    /* the snapshot of grants in force (grants.c) */
    struct store_outbox_cfg outbox; /* store_outbox_configure's; zero: no events written */
    store_away_fn away;             /* store_away_set's; NULL: every run on its caller's thread */
    void *away_ctx;
    bool write_failing;             /* the last write found the storage unavailable (atomic) */
    bool ledger;                    /* usage changes write ledger entries (USAGE_LEDGER) */
    _Atomic bool extras_seen;       /* some user has extra units (rows are never deleted) */
    _Atomic int64_t extras_read_ms; /* when extras_seen was last read as false (monotonic) */
    _Atomic uint64_t dup_gen;       /* store_duplicates_noted's calls */
    _Atomic uint64_t dup_none_gen;  /* dup_gen + 1 when a read begun then found none pending */
    _Atomic int64_t dup_none_ms;    /* when that read began (monotonic) */
};

/* Opens a backend from the part of the URL after its scheme ("var/x.db" for "sqlite:var/x.db"). */
typedef enum err (*store_open_fn)(const char *target, int pool_size, struct store **out,
                                  char *errbuf, size_t errlen);

MUST_CHECK enum err sqlite_store_open(const char *target, int pool_size, struct store **out,
                                      char *errbuf, size_t errlen);

/* target is the URL after "postgres://" or "postgresql://" (user:password@host:port/db?...). */
MUST_CHECK enum err pg_store_open(const char *target, int pool_size, struct store **out,
                                  char *errbuf, size_t errlen);

/*
 * Record layouts, so backends bind and read whole records from one table per record, and
 * store.c validates them from the same tables. The field order is the column order of every
 * backend's SQL for that record.
 */
enum store_field_kind {
    FIELD_TEXT,       /* char[size], NUL-terminated */
    FIELD_I64,        /* int64_t */
    FIELD_INT,        /* int */
    FIELD_BOOL,       /* bool */
    FIELD_SUB_STATUS, /* enum sub_status, in a text column: sub_status_name(), parsed back */
};

struct store_field {
    const char *name; /* the column */
    enum store_field_kind kind;
    size_t off;    /* offsetof in the record */
    size_t size;   /* bytes of a FIELD_TEXT array */
    bool required; /* FIELD_TEXT that must not be empty, FIELD_SUB_STATUS not MISSING */
};

struct store_record {
    const char *name; /* "customer", for messages */
    size_t size;      /* sizeof the record struct */
    const struct store_field *fields;
    size_t count;
};

extern const struct store_record store_customer_record;
extern const struct store_record store_subscription_record;
extern const struct store_record store_invoice_record;
extern const struct store_record store_event_record;
extern const struct store_record store_outcome_record;
extern const struct store_record store_checkout_record;
extern const struct store_record store_duplicate_record;
extern const struct store_record store_schedule_record;
extern const struct store_record store_grant_record;
extern const struct store_record store_outbox_record;
extern const struct store_record store_ledger_record;
extern const struct store_record store_extra_record;
extern const struct store_record store_usage_row_record;

/* A field's value as a database holds it: text, or an integer (booleans 0 and 1). */
struct store_value {
    bool is_text;
    const char *text; /* is_text: borrowed from the record or a static name */
    int64_t i64;
};

/* The value of field f of rec, for binding. */
struct store_value store_field_value(const struct store_field *f, const void *rec);

/*
 * Sets field f of rec from the text a database answered (NULL: empty, or 0; a boolean is 't'
 * or '1'). False when the text did not fit (cut) or is no integer for an integer field (0).
 */
bool store_field_from_text(const struct store_field *f, void *rec, const char *text);

/* Sets integer field f of rec (FIELD_I64, FIELD_INT saturated, FIELD_BOOL v != 0). */
void store_field_from_i64(const struct store_field *f, void *rec, int64_t v);

/* A string argument that must be non-empty and fit a field of size bytes. */
bool store_arg_ok(const char *s, size_t size);

/*
 * Every text field of rec terminated inside its array, and (when asked) required ones given:
 * text non-empty, a status not SUB_STATUS_MISSING.
 */
bool store_record_check(const struct store_record *r, const void *rec, bool required);

/*
 * Notes how a run of this kind ended: a write that met ERR_UNAVAILABLE (disk full, read-only,
 * database gone) marks the storage failing, until a write succeeds (store_writable).
 */
void store_note_write(struct store *st, enum store_run_kind kind, enum err err);

/*
 * Runs fn on a connection of st (ops->run without a message buffer); notes writes. Writes go
 * through the group commit queue (group.c) when it is on.
 */
MUST_CHECK enum err store_run(struct store *st, enum store_run_kind kind, store_tx_fn fn,
                              void *arg);

/*
 * After a run that may have written user_id's subscriptions, whether it committed or not:
 * drops the user's entitlement cache entry (a no-op when the cache is off).
 */
void store_cache_forget(struct store *st, const char *user_id);

/* After a run that may have written any user's subscriptions: drops every entry. */
void store_cache_clear(struct store *st);

/* Drops what usage_cache holds of user_id: after a run that may have changed its counters. */
void store_usage_forget(struct store *st, const char *user_id);

/* store_run with ops->run's message buffer. */
MUST_CHECK enum err store_run_msg(struct store *st, enum store_run_kind kind, store_tx_fn fn,
                                  void *arg, char *errbuf, size_t errlen);

/* The group commit queue (group.c): made by store_open, on; freed by store_close. */
struct store_group *store_group_new(void);
void store_group_free(struct store_group *g);

/*
 * ops->run, or, for a write while the group is on, a place in the next batch: answered once
 * the batch's transaction has committed (or with its failure).
 */
MUST_CHECK enum err store_group_run(struct store *st, enum store_run_kind kind, store_tx_fn fn,
                                    void *arg, char *errbuf, size_t errlen);

/* The grants snapshot (grants.c): made by store_open, freed by store_close. */
struct store_grants *store_grants_new(void);
void store_grants_free(struct store_grants *g);

/* The maintenance thread (usage.c): started by store_open, stopped by store_close. */
void store_maint_start(struct store *st);
void store_maint_stop(struct store *st);

/*
 * Outbox rules (outbox.c), run inside the caller's transaction; each is a no-op unless the
 * outbox is enabled. outbox_emit writes one event of type with data (a JSON object's text) once
 * per dedupe_key, its id derived from that key.
 */
MUST_CHECK enum err outbox_emit(const struct store *st, struct store_tx *tx, const char *type,
                                const char *dedupe_key, const char *data_json, int64_t now);

/*
 * The user's tier before a change, to compare after it with outbox_tier_after ("" when the
 * outbox is off). outbox_tier_after writes subscription.tier_changed when the change (a
 * subscription's, or a grant's: grant_id "" otherwise) moved the tier away from old; stamp (the
 * state's Stripe time, or the grant's) makes one event per change.
 */
MUST_CHECK enum err outbox_tier_before(const struct store *st, struct store_tx *tx,
                                       const char *user_id, int64_t now, char tier[TIER_ID_MAX]);

struct outbox_cause {
    const char *subscription_id; /* "" for a grant's change */
    const char *grant_id;        /* "" for a subscription's */
    int64_t stamp;
    /*
     * A change by the clock (a grant's start or end, the end of grace): one event per user,
     * tiers and time, whichever grant or subscription found it first (a grant ending as another
     * starts is one change).
     */
    bool clock;
};
MUST_CHECK enum err outbox_tier_after(const struct store *st, struct store_tx *tx,
                                      const char *user_id, const struct outbox_cause *c,
                                      const char *old, int64_t now);

/* The tier user_id is entitled to now: their most relevant subscription's, or a better grant's. */
MUST_CHECK enum err outbox_user_tier(const struct store *st, struct store_tx *tx,
                                     const char *user_id, int64_t now, char tier[TIER_ID_MAX]);

/* After a consume of g (granted or not) left used: quota.threshold / quota.exhausted, once. */
MUST_CHECK enum err outbox_quota(const struct store *st, struct store_tx *tx,
                                 const struct usage_grant *g, bool granted, int64_t used,
                                 int64_t now);

/*
 * Whether any user may have extra quota units, for what answers show (decisions always read
 * them): true once seen (rows are never deleted), otherwise asked again on tx at most once a
 * second, so another instance's first grant shows within a second.
 */
bool store_extras_maybe(struct store *st, struct store_tx *tx);

/*
 * After a run that recorded a duplicate subscription has ended (committed, or maybe: a lost
 * COMMIT answer): store_duplicate_pending_any reads again.
 */
void store_duplicates_noted(struct store *st);

/* Writes one formatted line into errbuf (which may be NULL when errlen is 0). */
void store_errf(char *errbuf, size_t errlen, const char *fmt, ...) PRINTF_LIKE(3, 4);

#endif /* SUBGATE_STORE_BACKEND_H */
