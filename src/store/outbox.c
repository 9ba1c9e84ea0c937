/*
 * outbox.c: the outgoing events for the app (issue #15), above the backends. The rules that
 * write an event (outbox_emit, the quota thresholds, the user's tier before and after a change)
 * run inside the transaction of the change that causes them, so a rolled-back change leaves no
 * event and a committed one always has its event. Each event is written once per cause (its
 * dedupe_key) and its id is derived from that key, so it is stable for receivers to dedupe.
 * Delivery (claim, post, record the outcome) is api/outbox.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hmac.h"
#include "base/jw.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "billing/entitlement.h"
#include "store/backend.h"
#include "store/store.h"

#define ID_HEX            24 /* hex digits of the derived id after "evt_" */
#define OUTBOX_GRANTS_MAX 16 /* a user's grants looked at for their tier */

void store_outbox_configure(struct store *st, const struct store_outbox_cfg *cfg)
{
    st->outbox = *cfg;
    if (st->outbox.threshold_count > OUTBOX_THRESHOLDS_MAX)
        st->outbox.threshold_count = OUTBOX_THRESHOLDS_MAX;
}

/* "evt_" and the first hex digits of an HMAC of the dedupe key: the same cause, the same id. */
static enum err derive_id(const char *dedupe_key, char id[OUTBOX_ID_MAX])
{
    static const char key[] = "subgate-outbox-id";
    const struct hmac_part part = { dedupe_key, strlen(dedupe_key) };
    char hex[HMAC_SHA256_HEX_LEN + 1];
    enum err err = hmac_sha256_hex(key, sizeof(key) - 1, &part, 1, hex);

    if (err)
        return err;
    (void)snprintf(id, OUTBOX_ID_MAX, "evt_%.*s", ID_HEX, hex);
    return ERR_OK;
}

enum err outbox_emit(const struct store *st, struct store_tx *tx, const char *type,
                     const char *dedupe_key, const char *data_json, int64_t now)
{
    struct outbox_event e = { .created_at = now,
                              .next_attempt_at = now * 1000,
                              .status = "pending" };
    bool inserted = false;
    int len;
    enum err err;

    if (!st->outbox.enabled)
        return ERR_OK;
    if (!str_copy(e.type, sizeof(e.type), type) ||
        !str_copy(e.dedupe_key, sizeof(e.dedupe_key), dedupe_key))
        return ERR_INVALID;
    if ((err = derive_id(dedupe_key, e.id)) != ERR_OK)
        return err;
    len = snprintf(e.payload, sizeof(e.payload),
                   "{\"id\":\"%s\",\"type\":\"%s\",\"created\":%lld,\"data\":%s}", e.id, e.type,
                   (long long)now, data_json);
    if (len < 0 || (size_t)len >= sizeof(e.payload))
        return ERR_TOO_LARGE;
    err = st->ops->outbox_insert(tx, &e, &inserted);
    if (!err && inserted)
        log_info("outbox: %s %s", e.type, e.id);
    return err;
}

/* A tier's place in the catalogue by rank; -1 for one it does not name. */
static int tier_rank(const struct store *st, const char *tier)
{
    for (size_t i = 0; i < st->outbox.tier_count; i++)
        if (strcmp(st->outbox.tiers[i], tier) == 0)
            return (int)i;
    return -1;
}

enum err outbox_user_tier(const struct store *st, struct store_tx *tx, const char *user_id,
                          int64_t now, char tier[TIER_ID_MAX])
{
    struct subscription sub;
    struct grant_record g[OUTBOX_GRANTS_MAX];
    int n = 0;
    enum err err = st->ops->subscription_get_for_user(tx, user_id, &sub);

    memcpy(tier, st->outbox.default_tier, TIER_ID_MAX);
    if (err && err != ERR_NOT_FOUND)
        return err;
    if (!err && entitlement_of(&sub, now, st->outbox.grace_s).grants && sub.tier[0])
        memcpy(tier, sub.tier, TIER_ID_MAX);
    if ((err = st->ops->grant_list(tx, user_id, now, OUTBOX_GRANTS_MAX, g, &n)))
        return err;
    for (int i = 0; i < n; i++) /* the best grant in force wins over a lower tier */
        if (grant_in_force(&g[i], now) && tier_rank(st, g[i].tier) > tier_rank(st, tier))
            memcpy(tier, g[i].tier, TIER_ID_MAX);
    return ERR_OK;
}

enum err outbox_tier_before(const struct store *st, struct store_tx *tx, const char *user_id,
                            int64_t now, char tier[TIER_ID_MAX])
{
    tier[0] = '\0';
    if (!st->outbox.enabled || !user_id[0])
        return ERR_OK;
    return outbox_user_tier(st, tx, user_id, now, tier);
}

enum err outbox_tier_after(const struct store *st, struct store_tx *tx, const char *user_id,
                           const struct outbox_cause *c, const char *old, int64_t now)
{
    char tier[TIER_ID_MAX], key[sizeof(((struct outbox_event *)0)->dedupe_key)];
    struct jw w;
    size_t len = 0;
    char *data;
    enum err err;

    if (!st->outbox.enabled || !user_id[0] || !old[0])
        return ERR_OK;
    if ((err = outbox_user_tier(st, tx, user_id, now, tier)) != ERR_OK)
        return err;
    if (strcmp(tier, old) == 0)
        return ERR_OK;
    jw_begin(&w);
    jw_str(&w, "user_id", user_id);
    jw_str(&w, "subscription_id", c->subscription_id);
    if (c->grant_id[0])
        jw_str(&w, "grant_id", c->grant_id);
    jw_str(&w, "old_tier", old);
    jw_str(&w, "new_tier", tier);
    jw_i64(&w, "effective_at", now);
    if (!(data = jw_finish(&w, &len)))
        return ERR_INVALID;
    if (c->clock)
        (void)snprintf(key, sizeof(key), "tier:%s:%s:%lld:clock:%s", old, tier, (long long)c->stamp,
                       user_id);
    else
        (void)snprintf(key, sizeof(key), "tier:%s:%s:%lld:%s%s:%s", old, tier, (long long)c->stamp,
                       c->subscription_id, c->grant_id, user_id);
    err = outbox_emit(st, tx, "subscription.tier_changed", key, data, now);
    free(data);
    return err;
}

/* One quota event: data names the user, quota, window and counter; percent when >= 0. */
static enum err quota_event(const struct store *st, struct store_tx *tx,
                            const struct usage_grant *g, const char *type, int percent,
                            int64_t used, int64_t now)
{
    char key[sizeof(((struct outbox_event *)0)->dedupe_key)];
    struct jw w;
    size_t len = 0;
    char *data;
    enum err err;

    jw_begin(&w);
    jw_str(&w, "user_id", g->user_id);
    jw_str(&w, "quota", g->quota);
    jw_i64(&w, "window_start", g->window_start);
    jw_i64(&w, "limit", g->limit);
    jw_i64(&w, "used", used);
    if (percent >= 0)
        jw_i64(&w, "percent", percent);
    if (!(data = jw_finish(&w, &len)))
        return ERR_INVALID;
    if (snprintf(key, sizeof(key), "%s:%d:%lld:%s:%s", type, percent, (long long)g->window_start,
                 g->quota, g->user_id) >= (int)sizeof(key)) {
        free(data);
        return ERR_TOO_LARGE;
    }
    err = outbox_emit(st, tx, type, key, data, now);
    free(data);
    return err;
}

enum err outbox_quota(const struct store *st, struct store_tx *tx, const struct usage_grant *g,
                      bool granted, int64_t used, int64_t now)
{
    int64_t before = granted ? used - g->n : used;
    enum err err = ERR_OK;

    if (!st->outbox.enabled || g->limit <= 0)
        return ERR_OK;
    for (size_t i = 0; i < st->outbox.threshold_count && !err; i++) {
        int pct = st->outbox.thresholds[i];
        int64_t mark = (g->limit / 100) * pct + ((g->limit % 100) * pct + 99) / 100; /* ceil */

        if (before < mark && used >= mark)
            err = quota_event(st, tx, g, "quota.threshold", pct, used, now);
    }
    if (!err && (!granted || (before < g->limit && used >= g->limit)))
        err = quota_event(st, tx, g, "quota.exhausted", -1, used, now);
    return err;
}

/* The public operations */

struct outbox_arg {
    const struct store_ops *ops;
    const struct outbox_event *in;
    const char *owner;
    const char *id;
    int64_t now_ms, lease_until;
    bool flag;
    int max;
    struct outbox_event *out;
    int *n;
};

static enum err insert_tx(struct store_tx *tx, void *arg)
{
    struct outbox_arg *a = arg;

    return a->ops->outbox_insert(tx, a->in, &a->flag);
}

enum err store_outbox_insert(struct store *st, const struct outbox_event *e, bool *inserted)
{
    struct outbox_arg a = { .ops = st->ops, .in = e };
    enum err err;

    *inserted = false;
    if (!store_record_check(&store_outbox_record, e, true))
        return ERR_INVALID;
    err = store_run(st, STORE_RUN_WRITE, insert_tx, &a);
    *inserted = !err && a.flag;
    return err;
}

static enum err claim_tx(struct store_tx *tx, void *arg)
{
    struct outbox_arg *a = arg;

    *a->n = 0;
    return a->ops->outbox_claim(tx, a->owner, a->now_ms, a->lease_until, a->max, a->out, a->n);
}

enum err store_outbox_claim(struct store *st, const char *owner, int64_t now_ms, int64_t lease_ms,
                            int max, struct outbox_event *out, int *n)
{
    struct outbox_arg a = { .ops = st->ops,
                            .owner = owner,
                            .now_ms = now_ms,
                            .lease_until = now_ms + lease_ms,
                            .max = max,
                            .out = out,
                            .n = n };

    *n = 0;
    if (!store_arg_ok(owner, sizeof(out->claimed_by)) || max < 0 || lease_ms <= 0)
        return ERR_INVALID;
    return store_run(st, STORE_RUN_WRITE, claim_tx, &a);
}

static enum err finish_tx(struct store_tx *tx, void *arg)
{
    struct outbox_arg *a = arg;

    return a->ops->outbox_finish(tx, a->in, &a->flag);
}

enum err store_outbox_finish(struct store *st, const struct outbox_event *e, bool *done)
{
    struct outbox_arg a = { .ops = st->ops, .in = e };
    enum err err;

    *done = false;
    if (!store_record_check(&store_outbox_record, e, true) || !e->claimed_by[0])
        return ERR_INVALID;
    err = store_run(st, STORE_RUN_SINGLE, finish_tx, &a);
    *done = !err && a.flag;
    return err;
}

static enum err list_tx(struct store_tx *tx, void *arg)
{
    struct outbox_arg *a = arg;

    *a->n = 0;
    return a->ops->outbox_list(tx, a->flag, a->max, a->out, a->n);
}

enum err store_outbox_list(struct store *st, bool failed_only, int max, struct outbox_event *out,
                           int *n)
{
    struct outbox_arg a = { .ops = st->ops, .flag = failed_only, .max = max, .out = out, .n = n };

    *n = 0;
    if (max < 0)
        return ERR_INVALID;
    return store_run(st, STORE_RUN_READ, list_tx, &a);
}

static enum err get_tx(struct store_tx *tx, void *arg)
{
    struct outbox_arg *a = arg;

    return a->ops->outbox_get(tx, a->id, a->out);
}

enum err store_outbox_get(struct store *st, const char *id, struct outbox_event *out)
{
    struct outbox_arg a = { .ops = st->ops, .id = id, .out = out };

    if (!store_arg_ok(id, OUTBOX_ID_MAX))
        return ERR_INVALID;
    return store_run(st, STORE_RUN_READ, get_tx, &a);
}

static enum err replay_tx(struct store_tx *tx, void *arg)
{
    struct outbox_arg *a = arg;

    return a->ops->outbox_replay(tx, a->id, a->now_ms, &a->flag);
}

enum err store_outbox_replay(struct store *st, const char *id, int64_t now_ms)
{
    struct outbox_arg a = { .ops = st->ops, .id = id, .now_ms = now_ms };
    enum err err;

    if (!store_arg_ok(id, OUTBOX_ID_MAX))
        return ERR_INVALID;
    err = store_run(st, STORE_RUN_SINGLE, replay_tx, &a);
    return !err && !a.flag ? ERR_NOT_FOUND : err;
}

/* Ends of grace, swept by the sender like grants' transitions (store_grace_transitions). */

#define GRACE_SWEEP_MAX 64

struct grace_arg {
    const struct store *st;
    const struct subscription *sub;
    struct subscription *due;
    int64_t now;
    int n;
};

static enum err grace_due_tx(struct store_tx *tx, void *arg)
{
    struct grace_arg *a = arg;

    return a->st->ops->grace_due(tx, a->now, a->st->outbox.grace_s, GRACE_SWEEP_MAX, a->due, &a->n);
}

/* One end of grace: claimed first, then the tier just before it compared with the tier at it. */
static enum err grace_tx(struct store_tx *tx, void *arg)
{
    struct grace_arg *a = arg;
    const struct subscription *s = a->sub;
    int64_t at = s->past_due_since + a->st->outbox.grace_s;
    char old[TIER_ID_MAX] = "";
    bool claimed = false;
    enum err err = a->st->ops->grace_announce(tx, s->id, s->past_due_since, &claimed);

    if (err || !claimed)
        return err;
    if ((err = outbox_tier_before(a->st, tx, s->user_id, at - 1, old)))
        return err;
    return outbox_tier_after(a->st, tx, s->user_id, &(struct outbox_cause){ s->id, "", at, true },
                             old, at);
}

enum err store_grace_transitions(struct store *st, int64_t now, int *n)
{
    struct subscription *due;
    struct grace_arg a = { .st = st, .now = now };
    enum err err;

    *n = 0;
    if (!st->outbox.enabled || st->outbox.grace_s <= 0)
        return ERR_OK;
    due = xcalloc(GRACE_SWEEP_MAX, sizeof(*due));
    a.due = due;
    err = store_run(st, STORE_RUN_READ, grace_due_tx, &a);
    *n = err ? 0 : a.n;
    for (int i = 0; i < *n && !err; i++) {
        struct grace_arg one = { .st = st, .sub = &due[i], .now = now };
        err = store_run(st, STORE_RUN_WRITE, grace_tx, &one);
    }
    free(due);
    return err;
}
