/*
 * checkout.c: the rules that keep a user at one live subscription, above the backends (issue
 * #10): one open checkout session per user, the one trial held by one checkout, and the record
 * of a second live subscription found anyway. Stripe is called by api/, never from here.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/jw.h"
#include "base/log.h"
#include "store/backend.h"
#include "store/store.h"

#define TRIAL_HOLD_S                                                             \
    INT64_C(3600) /* a trial held by a checkout that made no session is given up \
                   */

#define DUP_RECHECK_MS 1000 /* store_duplicate_pending_any's "none" is kept this long */

struct checkout_arg {
    const struct store_ops *ops;
    const char *key;  /* user id, session id or idempotency key */
    const char *user; /* trial_reserve */
    const char *status;
    const struct checkout_record *in;
    struct checkout_record *out;
    int64_t now;
    bool done;
};

static enum err latest_tx(struct store_tx *tx, void *arg)
{
    struct checkout_arg *a = arg;

    return a->ops->checkout_latest(tx, a->key, a->out);
}

enum err store_checkout_latest(struct store *st, const char *user_id, struct checkout_record *out)
{
    struct checkout_arg a = { .ops = st->ops, .key = user_id, .out = out };

    if (!store_arg_ok(user_id, USER_ID_MAX))
        return ERR_INVALID;
    return store_run(st, STORE_RUN_READ, latest_tx, &a);
}

static enum err record_tx(struct store_tx *tx, void *arg)
{
    struct checkout_arg *a = arg;
    enum err err = a->ops->checkout_expire_stale(tx, a->in->user_id, a->in->created);

    return err ? err : a->ops->checkout_insert(tx, a->in);
}

enum err store_checkout_open(struct store *st, const struct checkout_record *c,
                             struct checkout_record *other)
{
    struct checkout_arg a = { .ops = st->ops, .in = c };
    enum err err;

    if (!store_record_check(&store_checkout_record, c, true) ||
        (strcmp(c->status, "open") != 0 && strcmp(c->status, "expired") != 0))
        return ERR_INVALID;
    err = store_run(st, STORE_RUN_WRITE, record_tx, &a);
    if (err == ERR_CONFLICT && other && store_checkout_latest(st, c->user_id, other) != ERR_OK)
        memset(other, 0, sizeof(*other));
    return err;
}

static enum err close_tx(struct store_tx *tx, void *arg)
{
    struct checkout_arg *a = arg;

    return a->ops->checkout_close(tx, a->key, a->status, &a->done);
}

enum err store_checkout_close(struct store *st, const char *id, const char *status, bool *closed)
{
    struct checkout_arg a = { .ops = st->ops, .key = id, .status = status };
    enum err err;

    *closed = false;
    if (!store_arg_ok(id, STRIPE_ID_MAX) || !status ||
        (strcmp(status, "complete") != 0 && strcmp(status, "expired") != 0))
        return ERR_INVALID;
    err = store_run(st, STORE_RUN_SINGLE, close_tx, &a);
    *closed = !err && a.done;
    return err;
}

static enum err reserve_tx(struct store_tx *tx, void *arg)
{
    struct checkout_arg *a = arg;

    return a->ops->trial_reserve(tx, a->user, a->key, a->now, a->now - TRIAL_HOLD_S, &a->done);
}

enum err store_trial_reserve(struct store *st, const char *user_id, const char *key, int64_t now,
                             bool *reserved)
{
    struct checkout_arg a = { .ops = st->ops, .key = key, .user = user_id, .now = now };
    struct customer c;
    enum err err;

    *reserved = false;
    if (!store_arg_ok(user_id, USER_ID_MAX) ||
        !store_arg_ok(key, sizeof(((struct checkout_record *)0)->idem_key)))
        return ERR_INVALID;
    err = store_run(st, STORE_RUN_SINGLE, reserve_tx, &a);
    if (!err && !a.done && store_customer_get(st, user_id, &c) == ERR_NOT_FOUND)
        return ERR_NOT_FOUND;
    *reserved = !err && a.done;
    return err;
}

/* Duplicates */

struct dup_arg {
    const struct store_ops *ops;
    bool pending_only;
    int max;
    struct duplicate_record *out;
    const struct duplicate_record *in;
    int *n;
};

static enum err dup_list_tx(struct store_tx *tx, void *arg)
{
    struct dup_arg *a = arg;

    *a->n = 0;
    return a->ops->duplicate_list(tx, a->pending_only, a->max, a->out, a->n);
}

enum err store_duplicate_list(struct store *st, bool pending_only, int max,
                              struct duplicate_record *out, int *n)
{
    struct dup_arg a = { st->ops, pending_only, max, out, NULL, n };

    *n = 0;
    if (max < 0 || (max > 0 && !out))
        return ERR_INVALID;
    if (max == 0)
        return ERR_OK;
    return store_run(st, STORE_RUN_READ, dup_list_tx, &a);
}

void store_duplicates_noted(struct store *st)
{
    atomic_fetch_add(&st->dup_gen, 1);
}

enum err store_duplicate_pending_any(struct store *st, bool *any)
{
    const uint64_t gen = atomic_load(&st->dup_gen);
    const int64_t now = clock_mono_ms();
    struct duplicate_record d = { 0 };
    int n = 0;
    enum err err;

    *any = false;
    if (atomic_load(&st->dup_none_gen) == gen + 1 &&
        now - atomic_load(&st->dup_none_ms) < DUP_RECHECK_MS)
        return ERR_OK;
    err = store_duplicate_list(st, true, 1, &d, &n);
    if (err)
        return err;
    *any = n > 0;
    if (!*any) { /* kept for a second, unless this process records one (dup_gen moves) */
        atomic_store(&st->dup_none_ms, now);
        atomic_store(&st->dup_none_gen, gen + 1);
    }
    return ERR_OK;
}

static enum err dup_update_tx(struct store_tx *tx, void *arg)
{
    struct dup_arg *a = arg;

    return a->ops->duplicate_update(tx, a->in);
}

struct dup_resolved_arg {
    const struct store *st;
    const struct duplicate_record *d;
};

/* The update of a duplicate now canceled, and its subscription.duplicate_canceled event. */
static enum err dup_resolved_tx(struct store_tx *tx, void *arg)
{
    struct dup_resolved_arg *a = arg;
    char key[sizeof(((struct outbox_event *)0)->dedupe_key)];
    struct jw w;
    size_t len = 0;
    char *data;
    enum err err = a->st->ops->duplicate_update(tx, a->d);

    if (err)
        return err;
    jw_begin(&w);
    jw_str(&w, "user_id", a->d->user_id);
    jw_str(&w, "subscription_id", a->d->id);
    jw_str(&w, "kept_subscription_id", a->d->kept_id);
    jw_i64(&w, "refunded", a->d->refunded);
    if (!(data = jw_finish(&w, &len)))
        return ERR_INVALID;
    (void)snprintf(key, sizeof(key), "duplicate:%s", a->d->id); /* ids fit */
    err = outbox_emit(a->st, tx, "subscription.duplicate_canceled", key, data, clock_now());
    free(data);
    return err;
}

enum err store_duplicate_update(struct store *st, const struct duplicate_record *d)
{
    struct dup_arg a = { st->ops, false, 0, NULL, d, NULL };
    struct dup_resolved_arg r = { st, d };

    if (!store_record_check(&store_duplicate_record, d, true))
        return ERR_INVALID;
    if (st->outbox.enabled && strcmp(d->status, "resolved") == 0)
        return store_run(st, STORE_RUN_WRITE, dup_resolved_tx, &r);
    return store_run(st, STORE_RUN_SINGLE, dup_update_tx, &a);
}
