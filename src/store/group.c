/*
 * group.c: group commit, above the backends. Writes queue here; the first writer to find no
 * batch running leads: it takes the queue (up to GROUP_MAX), runs every write in one
 * transaction of its engine's runner, each inside a savepoint of its own, commits once and
 * wakes each writer with its own result. Writes arriving meanwhile form the next batch, so a
 * lone write commits at once and a busy store pays one commit for many writes.
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/xalloc.h"
#include "store/backend.h"
#include "store/store.h"

#define GROUP_MAX 64 /* writes per batch: a batch holds the write lock this much longer */

/* One queued write, on its writer's stack until done. */
struct unit {
    store_tx_fn fn;
    void *arg;
    enum store_run_kind kind;
    bool early; /* its first statement may run before the batch's other writes */
    char *errbuf;
    size_t errlen;
    enum err err;        /* its result, when done */
    bool again;          /* a deadlock victim in the batch: run it again, alone */
    bool done;           /* guarded by the group's mu */
    pthread_cond_t wake; /* signalled when done, or when it may lead */
    struct unit *next;   /* guarded by the group's mu */
};

struct store_group {
    pthread_mutex_t mu;
    struct unit *head, *tail; /* queued writes, oldest first */
    bool leading;             /* a batch is running */
    bool on;
    int fail_commits;   /* test hook: this many batches fail at their end */
    int skew_pipelines; /* test hook: in this many batches units are handed each other's results */
    int slow_us;        /* test hook: each batch waits this long first, as for a slow disk */
    uint64_t commits;   /* atomic */
    uint64_t units;     /* atomic */
    uint64_t pipelined; /* atomic */
};

/* A batch: its units, and how the current pass over them goes. */
struct batch {
    const struct store_ops *ops;
    struct unit *u[GROUP_MAX];
    int n;
    bool isolated;     /* each unit inside a savepoint */
    bool aborted;      /* the pass without savepoints met a failed unit: run them again isolated */
    bool fail;         /* the test hook */
    bool skew;         /* the other test hook */
    int pipelined;     /* units whose first statement went in this pass's pipeline */
    int pipelined_all; /* in every pass */
};

struct store_group *store_group_new(void)
{
    struct store_group *g = xcalloc(1, sizeof(*g));

    pthread_mutex_init(&g->mu, NULL);
    g->on = true;
    return g;
}

void store_group_free(struct store_group *g)
{
    if (!g)
        return;
    pthread_mutex_destroy(&g->mu);
    free(g);
}

void store_group_commit_set(struct store *st, bool on)
{
    st->group->on = on;
}

void store_group_stats_get(struct store *st, struct store_group_stats *out)
{
    out->commits = __atomic_load_n(&st->group->commits, __ATOMIC_RELAXED);
    out->units = __atomic_load_n(&st->group->units, __ATOMIC_RELAXED);
    out->pipelined = __atomic_load_n(&st->group->pipelined, __ATOMIC_RELAXED);
}

void store_group_fail_commits(struct store *st, int n)
{
    pthread_mutex_lock(&st->group->mu);
    st->group->fail_commits = n;
    pthread_mutex_unlock(&st->group->mu);
}

void store_group_skew_pipelines(struct store *st, int n)
{
    pthread_mutex_lock(&st->group->mu);
    st->group->skew_pipelines = n;
    pthread_mutex_unlock(&st->group->mu);
}

void store_group_slow_commits(struct store *st, int us)
{
    pthread_mutex_lock(&st->group->mu);
    st->group->slow_us = us;
    pthread_mutex_unlock(&st->group->mu);
}

static void errbuf_clear(char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = '\0';
}

/*
 * Where the engine pipelines: the first statement of each early unit (a STORE_RUN_SINGLE's one
 * write, which needs no transaction with the rest of its unit, or a STORE_RUN_WRITE_CLAIM's
 * claim of a row of its own), which may run before the batch's other units, is recorded by
 * running the unit's function in capture mode, and all of them go to the database together.
 * Each unit then runs as ever, its first statement answered from what came back. Two units at
 * least, or there is no round trip to save.
 */
static enum err batch_pipeline(struct batch *b, struct store_tx *tx)
{
    const struct store_ops *ops = b->ops;
    int early = 0;
    enum err err;

    b->pipelined = 0;
    if (b->isolated || !ops->pipeline_send)
        return ERR_OK;
    for (int i = 0; i < b->n; i++)
        early += b->u[i]->early;
    if (early < 2)
        return ERR_OK;
    for (int i = 0; i < b->n; i++) {
        struct unit *u = b->u[i];
        if (!u->early)
            continue;
        ops->pipeline_capture(tx, i);
        (void)u->fn(tx, u->arg); /* stops at its first statement; it runs again below */
    }
    ops->pipeline_capture(tx, -1);
    err = ops->pipeline_send(tx, &b->pipelined);
    b->pipelined_all += b->pipelined;
    return err;
}

/* The units, one after the other; the pass ends at the first that fails. */
static enum err batch_units(struct batch *b, struct store_tx *tx)
{
    enum err err;

    for (int i = 0; i < b->n; i++) {
        struct unit *u = b->u[i];
        u->again = false;
        errbuf_clear(u->errbuf, u->errlen);
        if (b->pipelined)
            (void)b->ops->pipeline_use(tx, b->skew ? i ^ 1 : i);
        err = b->ops->unit_begin(tx, b->isolated);
        if (err)
            return err;
        u->err = u->fn(tx, u->arg);
        err = b->ops->unit_end(tx, b->isolated, &u->err, &u->again, u->errbuf, u->errlen);
        if (err)
            return err;
        if (u->err && !b->isolated) {
            b->aborted = true;
            b->isolated = u->err != ERR_UNAVAILABLE; /* the storage is gone: no second pass */
            return u->err;
        }
    }
    return ERR_OK;
}

/*
 * The batch's transaction. The first pass runs the units one after the other with no
 * savepoint (one round trip less per unit on PostgreSQL), their first statements pipelined
 * where they can be; the first unit that fails ends it, and the runner rolls it back. The next
 * pass gives each unit a savepoint, so a unit that fails (a refusal, a conflict, a deadlock
 * victim) is rolled back alone and the rest commit.
 */
static enum err batch_tx(struct store_tx *tx, void *arg)
{
    struct batch *b = arg;
    enum err err;

    b->aborted = false;
    err = batch_pipeline(b, tx);
    if (err && err != ERR_UNAVAILABLE) {
        b->aborted = true; /* a pipelined statement failed: the units run again, isolated */
        b->isolated = true;
    }
    if (!err)
        err = batch_units(b, tx);
    if (b->pipelined && b->ops->pipeline_use(tx, -1) && !err) {
        b->aborted = true; /* a statement ran that no unit took: run them again, isolated */
        b->isolated = true;
        err = ERR_STORE;
    }
    if (err)
        return err;
    return b->fail ? ERR_UNAVAILABLE : ERR_OK;
}

/* Runs the batch; every unit's err and again are set after. */
static void batch_run(struct store *st, struct batch *b)
{
    char msg[256] = "";
    enum err err;

    if (b->n == 1 && !b->fail) { /* alone: exactly the runner's own way */
        struct unit *u = b->u[0];
        u->err = st->ops->run(st, u->kind, u->fn, u->arg, u->errbuf, u->errlen);
        return;
    }
    err = st->ops->run(st, STORE_RUN_WRITE, batch_tx, b, msg, sizeof(msg));
    if (err && b->aborted && b->isolated) {
        msg[0] = '\0';
        err = st->ops->run(st, STORE_RUN_WRITE, batch_tx, b, msg, sizeof(msg));
    }
    if (err == ERR_OK)
        return;
    for (int i = 0; i < b->n; i++) { /* not committed: nothing is acknowledged */
        struct unit *u = b->u[i];
        u->err = err;
        u->again = false;
        if ((err == ERR_STORE || err == ERR_UNAVAILABLE) && u->errbuf && u->errlen)
            store_errf(u->errbuf, u->errlen, "%s", msg[0] ? msg : "database error");
    }
}

/* Called with g->mu held, which it drops while the batch runs. */
static void lead(struct store *st, struct store_group *g)
{
    struct batch b = { .ops = st->ops };
    const int slow_us = g->slow_us;

    while (g->head && b.n < GROUP_MAX) {
        b.u[b.n++] = g->head;
        g->head = g->head->next;
    }
    if (!g->head)
        g->tail = NULL;
    b.fail = g->fail_commits > 0;
    g->fail_commits -= b.fail;
    b.skew = g->skew_pipelines > 0;
    g->leading = true;
    pthread_mutex_unlock(&g->mu);

    if (slow_us > 0)
        (void)usleep((useconds_t)slow_us); /* an interrupted sleep only means a shorter one */
    batch_run(st, &b);
    __atomic_add_fetch(&g->commits, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g->units, (uint64_t)b.n, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g->pipelined, (uint64_t)b.pipelined_all, __ATOMIC_RELAXED);

    pthread_mutex_lock(&g->mu);
    g->skew_pipelines -= b.skew && b.pipelined_all > 0 && g->skew_pipelines > 0;
    g->leading = false;
    for (int i = 0; i < b.n; i++) {
        b.u[i]->done = true;
        pthread_cond_signal(&b.u[i]->wake);
    }
    if (g->head) /* the next batch: its first writer leads it */
        pthread_cond_signal(&g->head->wake);
}

enum err store_group_run(struct store *st, enum store_run_kind kind, store_tx_fn fn, void *arg,
                         char *errbuf, size_t errlen)
{
    struct store_group *g = st->group;
    const bool early = kind == STORE_RUN_SINGLE || kind == STORE_RUN_WRITE_CLAIM;
    struct unit u;

    if (kind == STORE_RUN_WRITE_CLAIM)
        kind = STORE_RUN_WRITE; /* what the backends know */
    u = (struct unit){ .fn = fn,
                       .arg = arg,
                       .kind = kind,
                       .early = early,
                       .errbuf = errbuf,
                       .errlen = errlen };

    if (kind == STORE_RUN_READ || !g || !g->on) {
        if (kind != STORE_RUN_READ && g) {
            __atomic_add_fetch(&g->commits, 1, __ATOMIC_RELAXED);
            __atomic_add_fetch(&g->units, 1, __ATOMIC_RELAXED);
        }
        return st->ops->run(st, kind, fn, arg, errbuf, errlen);
    }
    pthread_cond_init(&u.wake, NULL);
    pthread_mutex_lock(&g->mu);
    if (g->tail)
        g->tail->next = &u;
    else
        g->head = &u;
    g->tail = &u;
    while (!u.done) {
        if (!g->leading)
            lead(st, g); /* takes this unit, or the ones queued before it first */
        else
            pthread_cond_wait(&u.wake, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    pthread_cond_destroy(&u.wake);
    if (u.again) /* rolled back in its batch, which committed the others: its own transaction */
        return st->ops->run(st, kind, fn, arg, errbuf, errlen);
    return u.err;
}
