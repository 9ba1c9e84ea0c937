/*
 * grants.c: tiers granted outside Stripe (issue #15), above the backends: insert, revoke, list,
 * and the grants in force for the hot reads. Those come from a process-wide snapshot of every
 * grant in force, read again at most every ttl_ms (the entitlement cache's bound) and at once
 * after this process's writes; grants are few (contracts, comps), so the snapshot is small.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/xalloc.h"
#include "billing/entitlement.h"
#include "store/backend.h"
#include "store/store.h"

#define GRANTS_SNAPSHOT_MAX 4096 /* grants in force kept in memory; more: each read asks the db */
#define GRANTS_USER_MAX     64   /* grants of one user looked at when the database is asked */

struct grant_arg {
    const struct store *st;
    const struct store_ops *ops;
    const char *key; /* id or user */
    const struct grant_record *in;
    struct grant_record *out;
    int64_t at;
    int max;
    int n;
    bool found;
};

/* A grant that changes the user's tier now writes subscription.tier_changed in its transaction. */
static enum err insert_tx(struct store_tx *tx, void *arg)
{
    struct grant_arg *a = arg;
    const struct grant_record *g = a->in;
    char old[TIER_ID_MAX];
    enum err err = outbox_tier_before(a->st, tx, g->user_id, a->at, old);

    if (!err)
        err = a->ops->grant_insert(tx, g);
    if (!err)
        err = outbox_tier_after(a->st, tx, g->user_id,
                                &(struct outbox_cause){ "", g->id, g->created_at, false }, old,
                                a->at);
    return err;
}

static enum err revoke_tx(struct store_tx *tx, void *arg)
{
    struct grant_arg *a = arg;
    char old[TIER_ID_MAX] = "";
    enum err err = a->ops->grant_get(tx, a->key, a->out);

    if (!err)
        err = outbox_tier_before(a->st, tx, a->out->user_id, a->at, old);
    if (!err)
        err = a->ops->grant_revoke(tx, a->key, a->at, &a->found);
    if (!err)
        err = a->ops->grant_get(tx, a->key, a->out);
    if (!err && a->found)
        err = outbox_tier_after(a->st, tx, a->out->user_id,
                                &(struct outbox_cause){ "", a->out->id, a->at, false }, old, a->at);
    return err;
}

#define TRANSITIONS_MAX 64

/* The latest of g's clock transitions due at now: its end, else its start. */
static int64_t transition_at(const struct grant_record *g, int64_t now)
{
    return g->ends_at && g->ends_at <= now ? g->ends_at : g->starts_at;
}

/*
 * One transition, in its own transaction: claimed first (another instance's claim makes this
 * one a no-op), then the tier just before it compared with the tier at it.
 */
static enum err transition_tx(struct store_tx *tx, void *arg)
{
    struct grant_arg *a = arg;
    const struct grant_record *g = a->in;
    int64_t at = transition_at(g, a->at);
    /* A start not announced yet (both passed while no sender ran): compared from before it. */
    int64_t from =
        g->starts_at > g->created_at && g->announced_at < g->starts_at ? g->starts_at : at;
    char old[TIER_ID_MAX] = "";
    bool claimed = false;
    enum err err = a->ops->grant_announce(tx, g->id, at, &claimed);

    if (err || !claimed)
        return err;
    if ((err = outbox_tier_before(a->st, tx, g->user_id, from - 1, old)))
        return err;
    return outbox_tier_after(a->st, tx, g->user_id, &(struct outbox_cause){ "", g->id, at, true },
                             old, at);
}

static enum err due_tx(struct store_tx *tx, void *arg)
{
    struct grant_arg *a = arg;

    return a->ops->grant_due(tx, a->at, a->max, a->out, &a->n);
}

enum err store_grant_transitions(struct store *st, int64_t now, int *n)
{
    struct grant_record *due = xcalloc(TRANSITIONS_MAX, sizeof(*due));
    struct grant_arg a = { .st = st,
                           .ops = st->ops,
                           .out = due,
                           .at = now,
                           .max = TRANSITIONS_MAX };
    enum err err = store_run(st, STORE_RUN_READ, due_tx, &a);

    *n = err ? 0 : a.n;
    for (int i = 0; i < *n && !err; i++) {
        struct grant_arg one = { .st = st, .ops = st->ops, .in = &due[i], .at = now };
        err = store_run(st, STORE_RUN_WRITE, transition_tx, &one);
    }
    free(due);
    return err;
}

static enum err get_tx(struct store_tx *tx, void *arg)
{
    struct grant_arg *a = arg;

    return a->ops->grant_get(tx, a->key, a->out);
}

static enum err list_tx(struct store_tx *tx, void *arg)
{
    struct grant_arg *a = arg;

    return a->ops->grant_list(tx, a->key, a->at, a->max, a->out, &a->n);
}

/*
 * The snapshot of one store: grants in force sorted by user id, and when it was read (monotonic
 * ms). full: there were GRANTS_SNAPSHOT_MAX or more, so lookups ask the database.
 */
struct store_grants {
    pthread_mutex_t mu;
    struct grant_record *list;
    int n;
    bool full;
    int64_t read_ms; /* 0: to be read again */
    uint64_t drops;  /* snapshot_drop's calls: a read begun before one is not kept */
};

struct store_grants *store_grants_new(void)
{
    struct store_grants *g = xcalloc(1, sizeof(*g));

    pthread_mutex_init(&g->mu, NULL);
    return g;
}

void store_grants_free(struct store_grants *g)
{
    if (!g)
        return;
    pthread_mutex_destroy(&g->mu);
    free(g->list);
    free(g);
}

static void snapshot_drop(struct store *st)
{
    pthread_mutex_lock(&st->grants->mu);
    st->grants->read_ms = 0;
    st->grants->drops++;
    pthread_mutex_unlock(&st->grants->mu);
}

enum err store_grant_insert(struct store *st, const struct grant_record *g)
{
    struct grant_arg a = { .st = st, .ops = st->ops, .in = g, .at = clock_now() };
    enum err err;

    if (!store_record_check(&store_grant_record, g, true))
        return ERR_INVALID;
    err = store_run(st, STORE_RUN_WRITE, insert_tx, &a);
    snapshot_drop(st);
    return err;
}

enum err store_grant_revoke(struct store *st, const char *id, int64_t at, bool *revoked,
                            struct grant_record *out)
{
    struct grant_arg a = { .st = st, .ops = st->ops, .key = id, .out = out, .at = at };
    enum err err;

    *revoked = false;
    if (!store_arg_ok(id, GRANT_ID_MAX))
        return ERR_INVALID;
    err = store_run(st, STORE_RUN_WRITE, revoke_tx, &a);
    snapshot_drop(st);
    *revoked = !err && a.found;
    return err;
}

enum err store_grant_get(struct store *st, const char *id, struct grant_record *out)
{
    struct grant_arg a = { .ops = st->ops, .key = id, .out = out };

    if (!store_arg_ok(id, GRANT_ID_MAX))
        return ERR_INVALID;
    return store_run(st, STORE_RUN_READ, get_tx, &a);
}

enum err store_grant_list(struct store *st, const char *user_id, int max, struct grant_record *out,
                          int *n)
{
    struct grant_arg a = { .ops = st->ops, .key = user_id, .out = out, .max = max };
    enum err err;

    *n = 0;
    if (!store_arg_ok(user_id, USER_ID_MAX) || max < 0)
        return ERR_INVALID;
    err = store_run(st, STORE_RUN_READ, list_tx, &a);
    *n = err ? 0 : a.n;
    return err;
}

static int by_user(const void *x, const void *y)
{
    return strcmp(((const struct grant_record *)x)->user_id,
                  ((const struct grant_record *)y)->user_id);
}

/*
 * Reads every grant in force from now on into a new snapshot, sorted by user. Not under the
 * snapshot's mutex: on a write fiber the read may park (store_away_set), and another fiber of
 * its thread may want the mutex meanwhile.
 */
static enum err snapshot_read(struct store *st, int64_t now, struct store_grants *out)
{
    struct grant_record *list = xcalloc(GRANTS_SNAPSHOT_MAX, sizeof(*list));
    struct grant_arg a = { .ops = st->ops,
                           .key = "",
                           .out = list,
                           .at = now,
                           .max = GRANTS_SNAPSHOT_MAX };
    enum err err = store_run(st, STORE_RUN_READ, list_tx, &a);

    if (err || !a.n) {
        free(list);
        list = NULL;
    } else {
        list = xrealloc(list, (size_t)a.n * sizeof(*list));
        qsort(list, (size_t)a.n, sizeof(*list), by_user);
    }
    out->list = list;
    out->n = err ? 0 : a.n;
    out->full = a.n >= GRANTS_SNAPSHOT_MAX;
    out->read_ms = clock_mono_ms();
    return err;
}

/* The best of the n grants in force at q->now that are q's user's into q. */
static void pick(const struct grant_record *g, int n, struct grant_query *q)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(g[i].user_id, q->user_id) != 0 || !grant_in_force(&g[i], q->now))
            continue;
        if (!q->found || q->better(&g[i], &q->best, q->ctx)) {
            q->best = g[i];
            q->found = true;
        }
    }
}

/* The user's grants in snap (sorted by user) into q. */
static void pick_user(const struct store_grants *snap, struct grant_query *q)
{
    struct grant_record probe = { .user_id = "" };
    const struct grant_record *hit, *end;

    if (!snap->n)
        return;
    memcpy(probe.user_id, q->user_id, strlen(q->user_id) + 1);
    hit = bsearch(&probe, snap->list, (size_t)snap->n, sizeof(*snap->list), by_user);
    while (hit && hit > snap->list && strcmp((hit - 1)->user_id, q->user_id) == 0)
        hit--; /* the first of the user's */
    for (end = hit; end && end < snap->list + snap->n && strcmp(end->user_id, q->user_id) == 0;)
        end++;
    if (hit)
        pick(hit, (int)(end - hit), q);
}

/*
 * The user's grants in the snapshot into q; *full: the snapshot does not hold them all. A stale
 * snapshot is read again, outside the mutex, and kept unless this process wrote a grant since
 * the read began (then the next lookup reads again).
 */
static enum err from_snapshot(struct store *st, int64_t ttl_ms, struct grant_query *q, bool *full)
{
    struct store_grants *snap = st->grants, fresh = { 0 };
    uint64_t drops;
    enum err err;

    pthread_mutex_lock(&snap->mu);
    if (snap->read_ms && ttl_ms > 0 && clock_mono_ms() - snap->read_ms < ttl_ms) {
        *full = snap->full;
        if (!*full)
            pick_user(snap, q);
        pthread_mutex_unlock(&snap->mu);
        return ERR_OK;
    }
    drops = snap->drops;
    pthread_mutex_unlock(&snap->mu);
    err = snapshot_read(st, q->now, &fresh);
    if (err)
        return err;
    *full = fresh.full;
    if (!*full)
        pick_user(&fresh, q);
    pthread_mutex_lock(&snap->mu);
    if (snap->drops == drops) {
        free(snap->list);
        snap->list = fresh.list;
        snap->n = fresh.n;
        snap->full = fresh.full;
        snap->read_ms = fresh.read_ms;
        fresh.list = NULL;
    }
    pthread_mutex_unlock(&snap->mu);
    free(fresh.list);
    return ERR_OK;
}

enum err store_grant_best(struct store *st, int64_t ttl_ms, struct grant_query *q)
{
    struct grant_record *mine;
    bool full = false;
    int n = 0;
    enum err err;

    q->found = false;
    if (!store_arg_ok(q->user_id, USER_ID_MAX))
        return ERR_INVALID;
    err = from_snapshot(st, ttl_ms, q, &full);
    if (err || !full)
        return err;
    mine = xcalloc(GRANTS_USER_MAX, sizeof(*mine));
    err = store_grant_list(st, q->user_id, GRANTS_USER_MAX, mine, &n);
    if (!err)
        pick(mine, n, q);
    free(mine);
    return err;
}
