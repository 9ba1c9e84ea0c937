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
#include "base/str.h"
#include "base/xalloc.h"
#include "billing/quota.h"
#include "store/backend.h"
#include "store/store.h"

#define KEY_TTL_S      INT64_C(86400) /* as Stripe keeps idempotency keys */
#define PRUNE_FIRST_S  60             /* the first round: after start-up and migrations */
#define PRUNE_PERIOD_S 3600           /* then one round this often */
#define PRUNE_BATCH    1000           /* records per transaction: writers wait no longer */
#define PRUNE_BATCHES  100            /* per round; the rest waits for the next one */

/* What one consume or refund did, inside its transaction. */
struct meter_step {
    bool granted;
    bool need_lock;       /* refused by the limit, with extra units to decide on: run locked */
    int64_t used;         /* the counter after */
    int64_t extra;        /* the window's extra units */
    int64_t balance;      /* the balance after */
    int64_t from_balance; /* units drawn from (consume) or given back to (refund) the balance */
    bool noted;           /* the ledger entry went in with the counter (usage_add_noted) */
};

struct consume_arg {
    struct store *st;
    const struct store_ops *ops;
    bool refund; /* give back instead of take */
    bool locked; /* in a transaction that can lock: extra units may be drawn on */
    const struct usage_grant *g;
    const struct store_idempotency *k;
    struct usage_outcome *o;
    struct meter_step step;
    bool replayed;
    /*
     * The ledger entry's time, fixed before the run (0: taken when the entry is made): a
     * pipelined run sends its first statement twice, which must be the same both times.
     */
    int64_t created_ms;
};

/* g's row of window_start, or a row of zero units when there is none. */
static enum err extra_read(const struct store_ops *ops, struct store_tx *tx,
                           const struct usage_grant *g, int64_t window_start, bool lock,
                           struct quota_extra *out)
{
    enum err err = ops->extra_get(tx, g, window_start, lock, out);

    if (err == ERR_NOT_FOUND) {
        memset(out, 0, sizeof(*out));
        (void)str_copy(out->user_id, sizeof(out->user_id), g->user_id); /* same sizes */
        (void)str_copy(out->quota, sizeof(out->quota), g->quota);
        out->window_start = window_start;
        err = ERR_OK;
    }
    return err;
}

/* Adds units and taken to a row of extras (d's user, quota and window). */
static enum err extra_change(const struct store_ops *ops, struct store_tx *tx,
                             const struct quota_extra *row, int64_t units, int64_t taken)
{
    struct quota_extra d = *row;

    d.units = units;
    d.taken = taken;
    return ops->extra_add(tx, &d);
}

/*
 * Past the tier's limit (issue #15): the window's extra units widen its allowance, and what
 * goes beyond that is drawn from the balance, all or nothing. Runs locked: the counter and the
 * rows cannot change under it.
 */
static enum err consume_extra(const struct store_ops *ops, struct store_tx *tx,
                              const struct usage_grant *g, struct meter_step *s)
{
    struct usage_grant all = *g;
    struct quota_extra win, bal;
    int64_t allowance, take;
    enum err err;

    if ((err = ops->usage_lock(tx, g, &s->used)) ||
        (err = extra_read(ops, tx, g, g->window_start, true, &win)) ||
        (err = extra_read(ops, tx, g, QUOTA_BALANCE, true, &bal)))
        return err;
    s->extra = win.units;
    s->balance = bal.units;
    allowance = quota_allowance(g->limit, win.units);
    if (g->n > INT64_MAX - s->used)
        return ERR_OK; /* refused */
    take = s->used + g->n <= allowance
               ? 0
               : s->used + g->n - (allowance > s->used ? allowance : s->used);
    if (take > bal.units)
        return ERR_OK; /* refused: nothing changes */
    all.limit = -1;    /* unlimited: decided above */
    if ((err = ops->usage_add_within(tx, &all, &s->used)))
        return err == ERR_NOT_FOUND ? ERR_STORE : err;
    if (take > 0 && ((err = extra_change(ops, tx, &bal, -take, 0)) ||
                     (err = extra_change(ops, tx, &win, 0, take))))
        return err;
    s->granted = true;
    s->balance = bal.units - take;
    s->from_balance = take;
    return ERR_OK;
}

/* The ledger's entry for a's metering step of kind, as it stands. */
static void ledger_entry_of(const struct consume_arg *a, const char *kind, struct ledger_entry *e)
{
    const struct usage_grant *g = a->g;

    *e = (struct ledger_entry){ .amount = g->n,
                                .window_start = g->window_start,
                                .used_after = a->step.used,
                                .balance = a->refund ? a->step.from_balance : -a->step.from_balance,
                                .created_ms = a->created_ms ? a->created_ms : clock_now_ms() };
    (void)str_copy(e->user_id, sizeof(e->user_id), g->user_id); /* same sizes */
    (void)str_copy(e->quota, sizeof(e->quota), g->quota);
    (void)str_copy(e->kind, sizeof(e->kind), kind);
    if (g->idem_key && !str_copy(e->idem_key, sizeof(e->idem_key), g->idem_key))
        e->idem_key[0] = '\0'; /* longer than any header subgate takes */
    if (g->request_id && !str_copy(e->request_id, sizeof(e->request_id), g->request_id))
        e->request_id[0] = '\0';
}

/* The ledger's entry for a metering step (when the ledger is on), in its transaction. */
static enum err ledger_note(const struct consume_arg *a, struct store_tx *tx, const char *kind)
{
    struct ledger_entry e;

    if (!a->st->ledger || a->step.noted)
        return ERR_OK;
    ledger_entry_of(a, kind, &e);
    return a->ops->ledger_insert(tx, &e, &e.id);
}

/* Whether a granted consume's entry is written by the counter's own statement. */
static bool noted_alone(const struct store *st)
{
    return st->ledger && st->ops->usage_add_noted;
}

/*
 * usage_add_within, with the ledger's entry in the same statement where the engine has one
 * (then a consume needs no transaction of its own).
 */
static enum err add_within(struct consume_arg *a, struct store_tx *tx,
                           const struct usage_grant *decide)
{
    struct ledger_entry e;
    enum err err;

    if (!noted_alone(a->st))
        return a->ops->usage_add_within(tx, decide, &a->step.used);
    ledger_entry_of(a, a->g->track ? "track" : "consume", &e);
    err = a->ops->usage_add_noted(tx, decide, &e, &a->step.used);
    a->step.noted = err == ERR_OK;
    return err;
}

/*
 * Adds g->n within the limit. The window's extra units and the balance are read too (the
 * answer shows them); when the limit refuses and there are some, consume_extra decides, which
 * needs a lock: without one (a single statement run), s->need_lock asks for a locked run.
 */
static enum err consume(struct consume_arg *a, struct store_tx *tx)
{
    const struct store_ops *ops = a->ops;
    const struct usage_grant *g = a->g;
    struct usage_grant decide = *g;
    struct meter_step *s = &a->step;
    struct quota_extra win, bal;
    enum err err;

    memset(s, 0, sizeof(*s));
    if (g->track)
        decide.limit = -1; /* recorded whatever the limit, which the answer still shows */
    err = add_within(a, tx, &decide);
    s->granted = err == ERR_OK;
    if (err == ERR_NOT_FOUND)
        err = ops->usage_get(tx, g->user_id, g->quota, g->window_start, &s->used);
    if (err == ERR_NOT_FOUND) {
        s->used = 0;
        err = ERR_OK;
    }
    if (err || g->limit < 0 || (s->granted && !store_extras_maybe(a->st, tx)))
        return err; /* granted within the limit, and nobody has extra units to show */
    if ((err = extra_read(ops, tx, g, g->window_start, false, &win)) ||
        (err = extra_read(ops, tx, g, QUOTA_BALANCE, false, &bal)))
        return err;
    s->extra = win.units;
    s->balance = bal.units;
    if (s->granted || (win.units <= 0 && bal.units <= 0))
        return ERR_OK;
    if (!a->locked) {
        s->need_lock = true;
        return ERR_OK;
    }
    return consume_extra(ops, tx, g, s);
}

/*
 * Quota events count the window's allowance (limit + extra units), and none is sent while the
 * balance has units: the user is not out of them.
 */
static enum err quota_events(const struct consume_arg *a, struct store_tx *tx)
{
    struct usage_grant allowance = *a->g;

    if (a->step.balance > 0)
        return ERR_OK;
    allowance.limit = quota_allowance(a->g->limit, a->step.extra);
    return outbox_quota(a->st, tx, &allowance, a->step.granted, a->step.used, clock_now());
}

static enum err consume_tx(struct store_tx *tx, void *arg)
{
    struct consume_arg *a = arg;
    enum err err = consume(a, tx);

    if (err || a->step.need_lock)
        return err;
    if (a->step.granted && (err = ledger_note(a, tx, a->g->track ? "track" : "consume")))
        return err;
    return quota_events(a, tx);
}

static bool grant_ok(const struct usage_grant *g)
{
    return store_arg_ok(g->user_id, USER_ID_MAX) && store_arg_ok(g->quota, QUOTA_ID_MAX) &&
           g->n > 0;
}

/*
 * A consume is one statement when nothing else must commit with it, else a transaction: with
 * the ledger on (its entry) where the engine cannot write it in the counter's statement, or
 * the outbox on and a limit (the threshold event it may cause).
 */
static enum store_run_kind consume_kind(const struct store *st, const struct usage_grant *g)
{
    bool ledger_tx = st->ledger && !noted_alone(st);

    return ledger_tx || (st->outbox.enabled && g->limit > 0) ? STORE_RUN_WRITE : STORE_RUN_SINGLE;
}

/*
 * Runs fn for a; once more in a transaction when a single statement could not decide. Then,
 * committed or not, the user's counters are no longer taken from memory.
 */
static enum err consume_run(struct store *st, enum store_run_kind kind, store_tx_fn fn,
                            struct consume_arg *a)
{
    enum err err;

    a->locked = kind == STORE_RUN_WRITE;
    err = store_run(st, kind, fn, a);
    if (err == ERR_OK && a->step.need_lock) {
        a->locked = true;
        err = store_run(st, STORE_RUN_WRITE, fn, a);
    }
    store_usage_forget(st, a->g->user_id);
    return err;
}

enum err store_usage_consume(struct store *st, const struct usage_grant *g, bool *granted,
                             int64_t *used_after)
{
    struct consume_arg a = { .st = st, .ops = st->ops, .g = g, .created_ms = clock_now_ms() };
    enum err err;

    *granted = false;
    *used_after = 0;
    if (!grant_ok(g))
        return ERR_INVALID;
    err = consume_run(st, consume_kind(st, g), consume_tx, &a);
    if (err)
        return err;
    *granted = a.step.granted;
    *used_after = a.step.used;
    return ERR_OK;
}

/*
 * Takes g->n back, never below zero; a window never counted stays at zero. The balance units
 * the window drew (past its allowance, limit + extra) go back to the balance first. Locks in
 * consume_extra's order (the counter, then the window's row, then the balance), so that the two
 * never wait for each other.
 */
static enum err give_back(const struct store_ops *ops, struct store_tx *tx,
                          const struct usage_grant *g, struct meter_step *s)
{
    struct quota_extra win, bal;
    int64_t used = 0, back = 0;
    enum err err;

    memset(s, 0, sizeof(*s));
    s->granted = true;
    if (g->limit >= 0 && ((err = ops->usage_lock(tx, g, &used)) ||
                          (err = extra_read(ops, tx, g, g->window_start, true, &win)) ||
                          (err = extra_read(ops, tx, g, QUOTA_BALANCE, true, &bal))))
        return err;
    if (g->limit >= 0 && win.taken > 0) {
        int64_t allowance = quota_allowance(g->limit, win.units);
        back = used > allowance ? used - allowance : 0;
        back = back < g->n ? back : g->n;
        back = back < win.taken ? back : win.taken;
        if (back > 0 && ((err = extra_change(ops, tx, &bal, back, 0)) ||
                         (err = extra_change(ops, tx, &win, 0, -back))))
            return err;
    }
    if (g->limit >= 0) {
        s->extra = win.units;
        s->balance = bal.units + back;
    }
    s->from_balance = back;
    err = ops->usage_sub(tx, g, &s->used);
    if (err == ERR_NOT_FOUND) {
        s->used = 0;
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
    bool claimed = false;
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
        if ((err = give_back(a->ops, tx, a->g, &a->step)) || (err = ledger_note(a, tx, "refund")))
            return err;
    } else {
        err = consume_tx(tx, a);
        if (err || a->step.need_lock)
            return err;
    }
    a->o->extra = a->step.extra;
    a->o->balance = a->step.balance;
    quota_outcome_settle(a->o, a->step.granted, a->step.used);
    return a->k ? a->ops->keyed_decide(tx, a->k->key, a->o) : ERR_OK;
}

/*
 * Runs keyed_tx for a consume or a refund: with a key, or for a refund, in one transaction
 * (that claims the key first). *o is left as asked when it fails.
 */
static enum err keyed_run(struct store *st, bool refund, const struct usage_grant *g,
                          const struct store_idempotency *k, struct usage_outcome *o,
                          bool *replayed)
{
    const struct usage_outcome asked = *o;
    struct consume_arg a = { .st = st,
                             .ops = st->ops,
                             .refund = refund,
                             .g = g,
                             .k = k,
                             .o = o,
                             .created_ms = clock_now_ms() };
    enum err err;

    *replayed = false;
    if (!grant_ok(g) || !memchr(o->tier, '\0', sizeof(o->tier)) ||
        (k &&
         (!store_arg_ok(k->key, IDEMPOTENCY_KEY_MAX) || !store_arg_ok(k->scope, QUOTA_ID_MAX) ||
          !store_arg_ok(k->request_hash, IDEMPOTENCY_KEY_MAX))))
        return ERR_INVALID;
    err = consume_run(st, k || refund ? STORE_RUN_WRITE : consume_kind(st, g), keyed_tx, &a);
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

enum err store_usage_meter(struct store *st, const struct usage_grant *g, struct usage_outcome *o)
{
    bool replayed = false;

    return keyed_run(st, false, g, NULL, o, &replayed);
}

/* Grants metered together, all or nothing (store_usage_meter_all). */
struct meter_all_arg {
    struct consume_arg a[STORE_METER_ALL_MAX];
    size_t n;
    size_t refused; /* the index of the refused one, or n */
};

/*
 * Meters each grant in turn, locked; the first refusal after a grant rolls the transaction
 * back (ERR_QUOTA, a refusal: no storage error), so the grants before it are undone.
 */
static enum err meter_all_tx(struct store_tx *tx, void *arg)
{
    struct meter_all_arg *m = arg;

    m->refused = m->n;
    for (size_t i = 0; i < m->n; i++) {
        struct consume_arg *a = &m->a[i];
        enum err err;

        if ((err = keyed_tx(tx, a)) != ERR_OK)
            return err;
        if (!a->step.granted) {
            m->refused = i;
            return i > 0 ? ERR_QUOTA : ERR_OK;
        }
    }
    return ERR_OK;
}

/*
 * The refused grant's quota events: its transaction was rolled back to undo the grants before
 * it, and the events with them (a lone refusal keeps its own).
 */
static enum err refused_events_tx(struct store_tx *tx, void *arg)
{
    return quota_events(arg, tx);
}

enum err store_usage_meter_all(struct store *st, const struct usage_grant *g,
                               struct usage_outcome *o, size_t n, size_t *refused)
{
    struct usage_outcome asked[STORE_METER_ALL_MAX];
    struct meter_all_arg m = { .n = n };
    enum err err;

    *refused = n;
    if (n == 0 || n > STORE_METER_ALL_MAX)
        return ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        if (!grant_ok(&g[i]) || g[i].track || !memchr(o[i].tier, '\0', sizeof(o[i].tier)))
            return ERR_INVALID;
        asked[i] = o[i];
        m.a[i] = (struct consume_arg){ .st = st,
                                       .ops = st->ops,
                                       .locked = true,
                                       .g = &g[i],
                                       .o = &o[i] };
    }
    err = store_run(st, STORE_RUN_WRITE, meter_all_tx, &m);
    for (size_t i = 0; i < n; i++)
        store_usage_forget(st, g[i].user_id);
    if (err == ERR_QUOTA && m.refused < n) {
        err = ERR_OK; /* a refusal after a grant: rolled back, as meant */
        if (st->outbox.enabled &&
            store_run(st, STORE_RUN_WRITE, refused_events_tx, &m.a[m.refused]) != ERR_OK)
            log_warn("usage: the quota events of a refused '%s' for '%s' were not recorded",
                     g[m.refused].quota, g[m.refused].user_id);
    }
    if (err) {
        memcpy(o, asked, n * sizeof(*o));
        return err;
    }
    for (size_t i = m.refused + (m.refused < n); i < n; i++)
        o[i] = asked[i]; /* never metered */
    *refused = m.refused;
    return ERR_OK;
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
