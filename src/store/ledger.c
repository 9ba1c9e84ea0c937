/*
 * ledger.c: the usage ledger's read side, and grants of extra quota units (issue #15). The
 * ledger's entries for consumes, tracks and refunds are written by usage.c in the transaction
 * of the change; a grant writes its entry and its units here, in one transaction.
 */
#include <stdatomic.h>
#include <string.h>

#include "base/clock.h"
#include "base/str.h"
#include "billing/quota.h"
#include "store/backend.h"
#include "store/store.h"

#define EXTRAS_RECHECK_MS 1000

void store_ledger_set(struct store *st, bool on)
{
    st->ledger = on;
}

bool store_extras_maybe(struct store *st, struct store_tx *tx)
{
    int64_t now = clock_mono_ms(), last = atomic_load(&st->extras_read_ms);
    bool any = false;

    if (atomic_load(&st->extras_seen))
        return true;
    if (last != 0 && now - last < EXTRAS_RECHECK_MS)
        return false;
    if (st->ops->extra_any(tx, &any) != ERR_OK)
        return true; /* cannot tell: read them */
    if (any)
        atomic_store(&st->extras_seen, true);
    else
        atomic_store(&st->extras_read_ms, now > 0 ? now : 1);
    return any;
}

struct ledger_arg {
    const struct store_ops *ops;
    const char *user_id;
    const char *quota;
    int64_t before;
    int max;
    struct ledger_entry *out;
    int *n;
};

static enum err ledger_list_tx(struct store_tx *tx, void *arg)
{
    struct ledger_arg *a = arg;

    *a->n = 0;
    return a->ops->ledger_list(tx, a->user_id, a->quota, a->before, a->max, a->out, a->n);
}

enum err store_ledger_list(struct store *st, const char *user_id, const char *quota, int64_t before,
                           int max, struct ledger_entry *out, int *n)
{
    struct ledger_arg a = { st->ops, user_id, quota ? quota : "", before, max, out, n };

    *n = 0;
    if (!store_arg_ok(user_id, USER_ID_MAX) || max < 0 || strlen(a.quota) >= QUOTA_ID_MAX)
        return ERR_INVALID;
    return max == 0 ? ERR_OK : store_run(st, STORE_RUN_READ, ledger_list_tx, &a);
}

struct extras_arg {
    const struct store_ops *ops;
    const char *user_id;
    int max;
    struct quota_extra *out;
    int *n;
};

static enum err extras_tx(struct store_tx *tx, void *arg)
{
    struct extras_arg *a = arg;

    *a->n = 0;
    return a->ops->extra_list(tx, a->user_id, a->max, a->out, a->n);
}

enum err store_quota_extras(struct store *st, const char *user_id, int max, struct quota_extra *out,
                            int *n)
{
    struct extras_arg a = { st->ops, user_id, max, out, n };

    *n = 0;
    if (!store_arg_ok(user_id, USER_ID_MAX) || max < 0)
        return ERR_INVALID;
    return max == 0 ? ERR_OK : store_run(st, STORE_RUN_READ, extras_tx, &a);
}

struct grant_arg {
    const struct store_ops *ops;
    const struct ledger_entry *e;
    int64_t limit;
    struct ledger_entry *out;
    struct quota_extra *after;
};

/*
 * A window's new units cover, first, the balance units the window drew past its old allowance:
 * those go back to the balance (the counter and the rows locked in the consume's order).
 */
static enum err cover_drawn(const struct grant_arg *a, struct store_tx *tx,
                            const struct usage_grant *g, int64_t units)
{
    struct quota_extra win, bal;
    int64_t used = 0, over, back;
    enum err err = a->ops->usage_lock(tx, g, &used);

    if (err || (err = a->ops->extra_get(tx, g, g->window_start, true, &win)))
        return err == ERR_NOT_FOUND ? ERR_OK : err;
    if (win.taken <= 0)
        return ERR_OK;
    if ((err = a->ops->extra_get(tx, g, QUOTA_BALANCE, true, &bal)))
        return err == ERR_NOT_FOUND ? ERR_STORE : err; /* drawn from it, so it exists */
    over = used - quota_allowance(a->limit, win.units);
    back = over < win.taken ? over : win.taken;
    back = back < units ? back : units;
    if (back <= 0)
        return ERR_OK;
    bal.units = back;
    bal.taken = 0;
    win.units = 0;
    win.taken = -back;
    if ((err = a->ops->extra_add(tx, &bal)))
        return err;
    return a->ops->extra_add(tx, &win);
}

/* The entry first: with a key taken already it fails (ERR_CONFLICT) before any unit is added. */
static enum err grant_tx(struct store_tx *tx, void *arg)
{
    struct grant_arg *a = arg;
    const struct ledger_entry *e = a->e;
    struct usage_grant g = { .window_start = e->window_start };
    struct quota_extra d = { .window_start = e->window_start, .units = e->amount };
    struct ledger_entry *out = a->out;
    enum err err;

    (void)str_copy(g.user_id, sizeof(g.user_id), e->user_id); /* same sizes */
    (void)str_copy(g.quota, sizeof(g.quota), e->quota);
    (void)str_copy(d.user_id, sizeof(d.user_id), e->user_id);
    (void)str_copy(d.quota, sizeof(d.quota), e->quota);
    *out = *e;
    out->used_after = 0;
    out->balance = e->window_start == QUOTA_BALANCE ? e->amount : 0;
    if (e->window_start != QUOTA_BALANCE) {
        if ((err = cover_drawn(a, tx, &g, e->amount)))
            return err;
        err = a->ops->usage_get(tx, e->user_id, e->quota, e->window_start, &out->used_after);
        if (err && err != ERR_NOT_FOUND)
            return err;
    }
    return (err = a->ops->ledger_insert(tx, out, &out->id)) || (err = a->ops->extra_add(tx, &d))
               ? err
               : a->ops->extra_get(tx, &g, e->window_start, false, a->after);
}

static enum err grant_get_tx(struct store_tx *tx, void *arg)
{
    struct grant_arg *a = arg;
    struct usage_grant g = { .window_start = a->out->window_start };
    enum err err = a->ops->ledger_grant_get(tx, a->e->user_id, a->e->idem_key, a->out);

    if (err)
        return err;
    (void)str_copy(g.user_id, sizeof(g.user_id), a->out->user_id); /* same sizes */
    (void)str_copy(g.quota, sizeof(g.quota), a->out->quota);
    g.window_start = a->out->window_start;
    return a->ops->extra_get(tx, &g, g.window_start, false, a->after);
}

/* The same grant asked again: what the caller controls is the same (not the window's start). */
static bool same_grant(const struct ledger_entry *a, const struct ledger_entry *b)
{
    return strcmp(a->quota, b->quota) == 0 && a->amount == b->amount &&
           (a->window_start == QUOTA_BALANCE) == (b->window_start == QUOTA_BALANCE) &&
           strcmp(a->reason, b->reason) == 0;
}

enum err store_quota_grant(struct store *st, const struct quota_grant_in *in,
                           struct ledger_entry *out, struct quota_extra *after, bool *replayed)
{
    const struct ledger_entry *e = in->e;
    struct grant_arg a = { st->ops, e, in->limit, out, after };
    enum err err;

    *replayed = false;
    memset(after, 0, sizeof(*after));
    if (!store_record_check(&store_ledger_record, e, true) || e->amount <= 0 ||
        strcmp(e->kind, "grant") != 0 || e->id != 0 || in->limit < 0)
        return ERR_INVALID;
    err = store_run(st, STORE_RUN_WRITE, grant_tx, &a);
    if (!err)
        atomic_store(&st->extras_seen, true);
    store_usage_forget(st, e->user_id); /* after extras_seen: a read begun before is not kept */
    if (err != ERR_CONFLICT || !e->idem_key[0])
        return err;
    /* The key was used: the first grant is the answer, if it is this one. */
    if ((err = store_run(st, STORE_RUN_READ, grant_get_tx, &a)))
        return err == ERR_NOT_FOUND ? ERR_CONFLICT : err;
    if (!same_grant(out, e))
        return ERR_CONFLICT;
    *replayed = true;
    return ERR_OK;
}
