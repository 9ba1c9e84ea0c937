/*
 * usage.c: metering above the backends: the atomic consume, the consume under an idempotency
 * key (its outcome stored as data, answered again on a retry), and the thread that prunes
 * idempotency records past their 24 hours, so no request pays for it.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "billing/quota.h"
#include "store/backend.h"
#include "store/store.h"

#define KEY_TTL_S      INT64_C(86400) /* as Stripe keeps idempotency keys */
#define PRUNE_FIRST_S  60             /* the first round: after start-up and migrations */
#define PRUNE_PERIOD_S 3600           /* then one round this often */
#define PRUNE_BATCH    1000           /* records per transaction: writers wait no longer */
#define PRUNE_BATCHES  100            /* per round; the rest waits for the next one */

struct consume_arg {
    const struct store *st;
    const struct store_ops *ops;
    bool refund; /* give back instead of take */
    const struct usage_grant *g;
    const struct store_idempotency *k;
    struct usage_outcome *o;
    bool granted;
    int64_t used;
    bool replayed;
};

/* Adds g->n within the limit; when refused, *used is the counter as it stands. */
static enum err consume(const struct store_ops *ops, struct store_tx *tx,
                        const struct usage_grant *g, bool *granted, int64_t *used)
{
    enum err err = ops->usage_add_within(tx, g, used);

    *granted = err == ERR_OK;
    if (err == ERR_NOT_FOUND)
        err = ops->usage_get(tx, g->user_id, g->quota, g->window_start, used);
    if (err == ERR_NOT_FOUND) {
        *used = 0;
        err = ERR_OK;
    }
    return err;
}

static enum err consume_tx(struct store_tx *tx, void *arg)
{
    struct consume_arg *a = arg;
    enum err err = consume(a->ops, tx, a->g, &a->granted, &a->used);

    return err ? err : outbox_quota(a->st, tx, a->g, a->granted, a->used, clock_now());
}

static bool grant_ok(const struct usage_grant *g)
{
    return store_arg_ok(g->user_id, USER_ID_MAX) && store_arg_ok(g->quota, QUOTA_ID_MAX) &&
           g->n > 0;
}

enum err store_usage_consume(struct store *st, const struct usage_grant *g, bool *granted,
                             int64_t *used_after)
{
    struct consume_arg a = { .st = st, .ops = st->ops, .g = g };
    enum err err;

    *granted = false;
    *used_after = 0;
    if (!grant_ok(g))
        return ERR_INVALID;
    /* On SQLite the refusal's read runs under the same write lock; elsewhere it is one more read.
     */
    /*
     * With the outbox on, a limited quota's consume is one transaction, so that the threshold
     * event it may cause commits with it; otherwise one statement.
     */
    err = store_run(st, st->outbox.enabled && g->limit > 0 ? STORE_RUN_WRITE : STORE_RUN_SINGLE,
                    consume_tx, &a);
    if (err)
        return err;
    *granted = a.granted;
    *used_after = a.used;
    return ERR_OK;
}

/* Takes g->n back, never below zero; a window never counted stays at zero. */
static enum err give_back(const struct store_ops *ops, struct store_tx *tx,
                          const struct usage_grant *g, int64_t *used)
{
    enum err err = ops->usage_sub(tx, g, used);

    if (err == ERR_NOT_FOUND) {
        *used = 0;
        err = ERR_OK;
    }
    return err;
}

/*
 * The key is claimed first: a concurrent request with the same key waits for this transaction,
 * then finds the outcome. A key of another request (scope or body) is a conflict.
 */
static enum err keyed_tx(struct store_tx *tx, void *arg)
{
    struct consume_arg *a = arg;
    struct store_keyed_row row;
    bool claimed = false, granted = false;
    int64_t used = 0;
    enum err err = a->k ? a->ops->keyed_claim(tx, a->k, &claimed) : ERR_OK;

    a->replayed = false;
    claimed = claimed || !a->k;
    if (err)
        return err;
    if (!claimed) {
        if ((err = a->ops->keyed_get(tx, a->k->key, &row)) != ERR_OK)
            return err == ERR_NOT_FOUND ? ERR_STORE : err; /* claimed, so it exists */
        if (strcmp(row.scope, a->k->scope) != 0 ||
            strcmp(row.request_hash, a->k->request_hash) != 0)
            return ERR_CONFLICT;
        if (!row.decided)
            return ERR_STORE; /* its outcome commits with its claim */
        *a->o = row.outcome;
        a->replayed = true;
        return ERR_OK;
    }
    if (a->refund) {
        granted = true;
        err = give_back(a->ops, tx, a->g, &used);
    } else {
        err = consume(a->ops, tx, a->g, &granted, &used);
        if (!err)
            err = outbox_quota(a->st, tx, a->g, granted, used, clock_now());
    }
    if (err)
        return err;
    quota_outcome_settle(a->o, granted, used);
    return a->k ? a->ops->keyed_decide(tx, a->k->key, a->o) : ERR_OK;
}

/*
 * Runs keyed_tx for a consume or a refund: with a key, in one transaction that claims it first;
 * a refund without a key is one statement. *o is left as asked when it fails.
 */
static enum err keyed_run(struct store *st, bool refund, const struct usage_grant *g,
                          const struct store_idempotency *k, struct usage_outcome *o,
                          bool *replayed)
{
    const struct usage_outcome asked = *o;
    struct consume_arg a = { .st = st, .ops = st->ops, .refund = refund, .g = g, .k = k, .o = o };
    enum err err;

    *replayed = false;
    if (!grant_ok(g) || !memchr(o->tier, '\0', sizeof(o->tier)) ||
        (k &&
         (!store_arg_ok(k->key, IDEMPOTENCY_KEY_MAX) || !store_arg_ok(k->scope, QUOTA_ID_MAX) ||
          !store_arg_ok(k->request_hash, IDEMPOTENCY_KEY_MAX))))
        return ERR_INVALID;
    err = store_run(st,
                    k || (!refund && st->outbox.enabled && g->limit > 0) ? STORE_RUN_WRITE
                                                                         : STORE_RUN_SINGLE,
                    keyed_tx, &a);
    if (err) {
        *o = asked;
        return err;
    }
    *replayed = a.replayed;
    return ERR_OK;
}

enum err store_usage_consume_once(struct store *st, const struct usage_grant *g,
                                  const struct store_idempotency *k, struct usage_outcome *o,
                                  bool *replayed)
{
    *replayed = false;
    if (!k) /* a keyless consume is store_usage_consume */
        return ERR_INVALID;
    return keyed_run(st, false, g, k, o, replayed);
}

enum err store_usage_refund(struct store *st, const struct usage_grant *g,
                            const struct store_idempotency *k, struct usage_outcome *o,
                            bool *replayed)
{
    return keyed_run(st, true, g, k, o, replayed);
}

/* Pruning */

struct prune_arg {
    const struct store_ops *ops;
    int64_t before;
    int deleted;
};

static enum err prune_tx(struct store_tx *tx, void *arg)
{
    struct prune_arg *a = arg;

    a->deleted = 0;
    return a->ops->keyed_prune(tx, a->before, PRUNE_BATCH, &a->deleted);
}

enum err store_idempotency_prune(struct store *st, int64_t before, int *deleted)
{
    enum err err = ERR_OK;

    *deleted = 0;
    for (int i = 0; i < PRUNE_BATCHES && err == ERR_OK; i++) {
        struct prune_arg a = { st->ops, before, 0 };
        err = store_run(st, STORE_RUN_WRITE, prune_tx, &a);
        *deleted += err ? 0 : a.deleted;
        if (a.deleted < PRUNE_BATCH)
            break;
    }
    return err;
}

struct store_maint {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* on CLOCK_MONOTONIC */
    bool stop;           /* guarded by mu */
    struct store *st;
};

static void prune_once(struct store *st)
{
    int deleted = 0;

    if (store_idempotency_prune(st, clock_now() - KEY_TTL_S, &deleted) != ERR_OK)
        log_warn("cannot prune idempotency records; trying again in %d s", PRUNE_PERIOD_S);
    else if (deleted > 0)
        log_info("pruned %d idempotency records older than 24 hours", deleted);
}

/* Sleeps s seconds, or less when stopped: returns false once stopped. Called with mu held. */
static bool maint_sleep(struct store_maint *m, int s)
{
    struct timespec at;

    clock_gettime(CLOCK_MONOTONIC, &at);
    at.tv_sec += s;
    while (!m->stop && pthread_cond_timedwait(&m->wake, &m->mu, &at) == 0)
        ; /* woken without stop: wait out the time */
    return !m->stop;
}

/* Prunes after PRUNE_FIRST_S, then every PRUNE_PERIOD_S, until stopped. */
static void *maint_main(void *arg)
{
    struct store_maint *m = arg;

    pthread_mutex_lock(&m->mu);
    for (int s = PRUNE_FIRST_S; maint_sleep(m, s); s = PRUNE_PERIOD_S) {
        pthread_mutex_unlock(&m->mu);
        prune_once(m->st);
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

void store_maint_start(struct store *st)
{
    struct store_maint *m = xcalloc(1, sizeof(*m));
    pthread_condattr_t attr;

    m->st = st;
    pthread_mutex_init(&m->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&m->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&m->thread, NULL, maint_main, m) != 0) {
        log_warn("cannot start the store's maintenance thread: idempotency records are not pruned");
        pthread_cond_destroy(&m->wake);
        pthread_mutex_destroy(&m->mu);
        free(m);
        return;
    }
    st->maint = m;
}

void store_maint_stop(struct store *st)
{
    struct store_maint *m = st->maint;

    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    pthread_cond_destroy(&m->wake);
    pthread_mutex_destroy(&m->mu);
    free(m);
    st->maint = NULL;
}
