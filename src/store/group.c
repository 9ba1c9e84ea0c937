/*
 * group.c: group commit, above the backends. Writes queue here; the first writer to find no
 * batch running leads: it takes the queue (up to GROUP_MAX), runs every write in one
 * transaction of its engine's runner, each inside a savepoint of its own, commits once and
 * wakes each writer with its own result. Writes arriving meanwhile form the next batch, so a
 * lone write commits at once and a busy store pays one commit for many writes.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/fiber.h"
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
    enum err err; /* its result, when done */
    bool again;   /* a deadlock victim in the batch: run it again, alone */
    bool done;    /* set by its batch's leader before the post */
    bool led;     /* it led its own batch: no post comes for it */
    /*
     * Posted once at most, outside the group's mu: when its batch is done, or when it is to
     * lead the next one. Its writer returns only after taking that post, so nothing touches
     * the unit (on the writer's stack) after its writer is gone.
     */
    sem_t wake;
    struct unit *next; /* guarded by the group's mu */
    /* A write of a fiber: the fiber, its store, and the next such write of its thread. */
    struct fiber *fiber;
    struct store *st;
    struct unit *next_parked;
};

/* The writes of this thread's fibers parked for the next flush, oldest first. */
static _Thread_local struct unit *parked_head, *parked_tail;

struct store_group {
    pthread_mutex_t mu;
    struct unit *head, *tail; /* queued writes, oldest first */
    bool leading;             /* a batch is running, or handed to the next one's leader */
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

static void post(struct unit *u)
{
    (void)sem_post(&u->wake); /* cannot overflow: posted once */
}

/* Waits for its one post; true when its batch is done, false when it is to lead the next. */
static bool wait_post(struct unit *u)
{
    while (sem_wait(&u->wake) != 0 && errno == EINTR)
        ;
    return u->done;
}

/*
 * Called with g->mu held; returns with it released. Runs the batch of the writes queued (self
 * among them), then hands the lead to the first write still queued, if any (g->leading stays
 * set, so no other writer starts a batch meanwhile), and wakes each writer of the batch. The
 * wakes are posted after the mu is released: a writer woken on this core would otherwise run
 * only to wait for the mu at once, two task switches more per write.
 */
static void lead(struct store *st, struct store_group *g, struct unit *self)
{
    struct batch b = { .ops = st->ops };
    const int slow_us = g->slow_us;
    struct unit *next;

    self->led = true;

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
    next = g->head;
    g->leading = next != NULL;
    pthread_mutex_unlock(&g->mu);
    for (int i = 0; i < b.n; i++) {
        b.u[i]->done = true;
        if (b.u[i] != self)
            post(b.u[i]);
    }
    /*
     * Last: on a busy core the writers just woken answer and bring their next writes before the
     * next leader takes the queue, so batches are larger (PostgreSQL consume in make bench:
     * 11 writes a commit instead of 8, about 8% less CPU a write).
     */
    if (next)
        post(next);
}

/* Queues u and waits until its batch is done, leading a batch when it comes to that. */
static void queue_and_wait(struct store *st, struct store_group *g, struct unit *u)
{
    pthread_mutex_lock(&g->mu);
    if (g->tail)
        g->tail->next = u;
    else
        g->head = u;
    g->tail = u;
    if (!g->leading) {
        lead(st, g, u); /* the queue was empty: this unit heads it, so is in the batch */
    } else {
        pthread_mutex_unlock(&g->mu);
        if (!wait_post(u)) {
            pthread_mutex_lock(&g->mu); /* handed the lead: this unit heads the queue */
            lead(st, g, u);
        }
    }
}

/*
 * Runs the writes of this thread's parked fibers for st, as so many writers would: queued
 * together, so that they share a batch; each is waited for in turn (a post, or the lead of the
 * next batch, as in store_group_run), then its fiber is woken.
 */
static void fibers_flush(void *arg)
{
    struct store *st = arg;
    struct store_group *g = st->group;
    struct unit *mine = NULL, **tail = &mine, *rest = NULL, **rest_tail = &rest;

    for (struct unit *u = parked_head, *nx; u; u = nx) { /* this store's, in order */
        nx = u->next_parked;
        u->next_parked = NULL;
        if (u->st == st) {
            *tail = u;
            tail = &u->next_parked;
        } else {
            *rest_tail = u;
            rest_tail = &u->next_parked;
        }
    }
    parked_head = rest;
    parked_tail = NULL;
    for (struct unit *u = rest; u; u = u->next_parked)
        parked_tail = u;
    if (!mine)
        return;
    pthread_mutex_lock(&g->mu);
    for (struct unit *u = mine; u; u = u->next_parked) {
        if (g->tail)
            g->tail->next = u;
        else
            g->head = u;
        g->tail = u;
    }
    if (!g->leading)
        lead(st, g, mine); /* the queue was empty: mine head it */
    else
        pthread_mutex_unlock(&g->mu);
    for (struct unit *u = mine; u; u = u->next_parked) {
        if (!u->led && !wait_post(u)) {
            pthread_mutex_lock(&g->mu); /* handed the lead: u heads the queue */
            lead(st, g, u);
        }
    }
    for (struct unit *u = mine, *nx; u; u = nx) {
        nx = u->next_parked; /* u is on its fiber's stack: read before the fiber runs again */
        fiber_wake(u->fiber);
    }
}

/* store_group_run on a fiber: the write waits, parked, for its thread's next flush. */
static void fiber_wait(struct store *st, struct unit *u)
{
    u->fiber = fiber_self();
    u->st = st;
    u->next_parked = NULL;
    if (parked_tail)
        parked_tail->next_parked = u;
    else
        parked_head = u;
    parked_tail = u;
    fiber_park(fibers_flush, st);
}

void store_away_set(struct store *st, store_away_fn submit, void *ctx)
{
    st->away = submit;
    st->away_ctx = ctx;
}

/* A run handed away from a fiber: what to run, and its result; on the fiber's stack. */
struct away_run {
    struct store *st;
    enum store_run_kind kind;
    store_tx_fn fn;
    void *arg;
    char *errbuf;
    size_t errlen;
    enum err err;
    struct fiber *fiber;
};

static void away_run_job(void *arg)
{
    struct away_run *a = arg;
    struct fiber *f = a->fiber;

    a->err = a->st->ops->run(a->st, a->kind, a->fn, a->arg, a->errbuf, a->errlen);
    fiber_wake_away(f); /* a is gone once its fiber runs again */
}

/* ops->run, by another thread while the calling fiber waits, when st has one (store_away_set). */
static enum err run_alone(struct store *st, enum store_run_kind kind, store_tx_fn fn, void *arg,
                          char *errbuf, size_t errlen)
{
    struct fiber *self = st->away ? fiber_self() : NULL;

    if (self) {
        struct away_run a = { .st = st,
                              .kind = kind,
                              .fn = fn,
                              .arg = arg,
                              .errbuf = errbuf,
                              .errlen = errlen,
                              .fiber = self };
        if (st->away(st->away_ctx, away_run_job, &a)) {
            fiber_park_away();
            return a.err;
        }
    }
    return st->ops->run(st, kind, fn, arg, errbuf, errlen);
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
        return run_alone(st, kind, fn, arg, errbuf, errlen);
    }
    (void)sem_init(&u.wake, 0, 0); /* cannot fail: not shared, value 0 */
    if (fiber_self())
        fiber_wait(st, &u); /* the flush queues it with its thread's other fibers' writes */
    else
        queue_and_wait(st, g, &u);
    sem_destroy(&u.wake);
    if (u.again) /* rolled back in its batch, which committed the others: its own transaction */
        return run_alone(st, kind, fn, arg, errbuf, errlen);
    return u.err;
}
