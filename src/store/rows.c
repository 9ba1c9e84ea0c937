/*
 * rows.c: the store operations that are one row operation each (reads, plain upserts, lists),
 * validated once here for every backend and run on a connection the backend lends.
 */
#include <string.h>

#include "base/clock.h"
#include "billing/status.h"
#include "billing/tiers.h"
#include "store/backend.h"
#include "store/entcache.h"
#include "store/store.h"

/* Customers */

struct customer_arg {
    const struct store_ops *ops;
    const char *key; /* user id or Stripe customer id */
    const struct customer *in;
    struct customer *out;
    bool done; /* customer_insert_new: linked; mark_trial: found */
};

static enum err customer_get_tx(struct store_tx *tx, void *arg)
{
    struct customer_arg *a = arg;

    return a->ops->customer_get(tx, a->key, a->out);
}

enum err store_customer_get(struct store *st, const char *user_id, struct customer *out)
{
    struct customer_arg a = { .ops = st->ops, .key = user_id, .out = out };

    if (!store_arg_ok(user_id, USER_ID_MAX))
        return ERR_INVALID;
    return store_run(st, STORE_RUN_READ, customer_get_tx, &a);
}

static enum err customer_by_stripe_tx(struct store_tx *tx, void *arg)
{
    struct customer_arg *a = arg;

    return a->ops->customer_get_by_stripe_id(tx, a->key, a->out);
}

enum err store_customer_get_by_stripe_id(struct store *st, const char *stripe_customer_id,
                                         struct customer *out)
{
    struct customer_arg a = { .ops = st->ops, .key = stripe_customer_id, .out = out };

    if (!store_arg_ok(stripe_customer_id, STRIPE_ID_MAX))
        return ERR_INVALID;
    return store_run(st, STORE_RUN_READ, customer_by_stripe_tx, &a);
}

static enum err customer_insert_tx(struct store_tx *tx, void *arg)
{
    struct customer_arg *a = arg;

    return a->ops->customer_insert(tx, a->in);
}

enum err store_customer_insert(struct store *st, const struct customer *c)
{
    struct customer_arg a = { .ops = st->ops, .in = c };

    if (!store_record_check(&store_customer_record, c, true))
        return ERR_INVALID;
    return store_run(st, STORE_RUN_SINGLE, customer_insert_tx, &a);
}

static enum err customer_link_tx(struct store_tx *tx, void *arg)
{
    struct customer_arg *a = arg;

    return a->ops->customer_insert_new(tx, a->in, &a->done);
}

enum err store_customer_link(struct store *st, const struct customer *c, bool *linked)
{
    struct customer_arg a = { .ops = st->ops, .in = c };
    enum err err;

    *linked = false;
    if (!store_record_check(&store_customer_record, c, true))
        return ERR_INVALID;
    err = store_run(st, STORE_RUN_SINGLE, customer_link_tx, &a);
    *linked = !err && a.done;
    return err;
}

static enum err mark_trial_tx(struct store_tx *tx, void *arg)
{
    struct customer_arg *a = arg;

    return a->ops->customer_mark_trial(tx, a->key, &a->done);
}

enum err store_customer_mark_trial(struct store *st, const char *user_id)
{
    struct customer_arg a = { .ops = st->ops, .key = user_id };
    enum err err;

    if (!store_arg_ok(user_id, USER_ID_MAX))
        return ERR_INVALID;
    err = store_run(st, STORE_RUN_SINGLE, mark_trial_tx, &a);
    return err == ERR_OK && !a.done ? ERR_NOT_FOUND : err;
}

/* Subscriptions */

struct sub_arg {
    const struct store_ops *ops;
    const char *key; /* subscription id or user id */
    const struct subscription *in;
    struct subscription *out;
};

static enum err subscription_put_tx(struct store_tx *tx, void *arg)
{
    struct sub_arg *a = arg;
    const struct store_sub_row row = store_sub_row_of(a->in, clock_now());

    return a->ops->subscription_put(tx, &row);
}

enum err store_subscription_upsert(struct store *st, const struct subscription *s)
{
    struct sub_arg a = { .ops = st->ops, .in = s };

    enum err err;

    if (!store_record_check(&store_subscription_record, s, true))
        return ERR_INVALID;
    err = store_run(st, STORE_RUN_SINGLE, subscription_put_tx, &a);
    store_cache_clear(st); /* it may have moved the subscription from another user */
    return err;
}

static enum err subscription_get_tx(struct store_tx *tx, void *arg)
{
    struct sub_arg *a = arg;

    return a->ops->subscription_get(tx, a->key, false, a->out);
}

enum err store_subscription_get(struct store *st, const char *id, struct subscription *out)
{
    struct sub_arg a = { .ops = st->ops, .key = id, .out = out };

    if (!store_arg_ok(id, STRIPE_ID_MAX))
        return ERR_INVALID;
    return store_run(st, STORE_RUN_READ, subscription_get_tx, &a);
}

static enum err subscription_for_user_tx(struct store_tx *tx, void *arg)
{
    struct sub_arg *a = arg;

    return a->ops->subscription_get_for_user(tx, a->key, a->out);
}

enum err store_subscription_get_for_user(struct store *st, const char *user_id,
                                         struct subscription *out)
{
    struct sub_arg a = { .ops = st->ops, .key = user_id, .out = out };
    struct entcache_ticket t;
    enum err err;

    if (!store_arg_ok(user_id, USER_ID_MAX))
        return ERR_INVALID;
    if (!st->cache)
        return store_run(st, STORE_RUN_READ, subscription_for_user_tx, &a);
    switch (entcache_get(st->cache, user_id, clock_mono_ms(), out, &t)) {
    case ENTCACHE_SUB:
        return ERR_OK;
    case ENTCACHE_NONE:
        return ERR_NOT_FOUND;
    case ENTCACHE_MISS:
        break;
    }
    err = store_run(st, STORE_RUN_READ, subscription_for_user_tx, &a);
    if (err == ERR_OK || err == ERR_NOT_FOUND)
        (void)entcache_put(st->cache, user_id, err ? NULL : out, &t); /* refused: next read's */
    return err;
}

/* Invoices */

struct invoice_arg {
    const struct store_ops *ops;
    const char *user_id;
    const char *key; /* invoice id */
    const struct invoice *in;
    int max;
    struct invoice *out;
    int *n;
};

static enum err invoice_put_tx(struct store_tx *tx, void *arg)
{
    struct invoice_arg *a = arg;

    return a->ops->invoice_put(tx, a->in);
}

enum err store_invoice_upsert(struct store *st, const struct invoice *inv)
{
    struct invoice_arg a = { .ops = st->ops, .in = inv };

    if (!store_record_check(&store_invoice_record, inv, true))
        return ERR_INVALID;
    return store_run(st, STORE_RUN_SINGLE, invoice_put_tx, &a);
}

static enum err invoice_get_tx(struct store_tx *tx, void *arg)
{
    struct invoice_arg *a = arg;

    return a->ops->invoice_get(tx, a->key, false, a->out);
}

enum err store_invoice_get(struct store *st, const char *id, struct invoice *out)
{
    struct invoice_arg a = { .ops = st->ops, .key = id, .out = out };

    if (!store_arg_ok(id, STRIPE_ID_MAX))
        return ERR_INVALID;
    return store_run(st, STORE_RUN_READ, invoice_get_tx, &a);
}

static enum err invoice_list_tx(struct store_tx *tx, void *arg)
{
    struct invoice_arg *a = arg;

    *a->n = 0;
    return a->ops->invoice_list(tx, a->user_id, a->max, a->out, a->n);
}

enum err store_invoice_list(struct store *st, const char *user_id, int max, struct invoice *out,
                            int *n)
{
    struct invoice_arg a = { .ops = st->ops, .user_id = user_id, .max = max, .out = out, .n = n };
    enum err err;

    *n = 0;
    if (!store_arg_ok(user_id, USER_ID_MAX) || max < 0 || (max > 0 && !out))
        return ERR_INVALID;
    if (max == 0)
        return ERR_OK;
    err = store_run(st, STORE_RUN_READ, invoice_list_tx, &a);
    if (err)
        *n = 0;
    return err;
}

/* Usage */

struct usage_get_arg {
    const struct store_ops *ops;
    const char *user_id;
    const char *quota;
    int64_t window_start;
    int64_t *used;
};

static enum err usage_get_tx(struct store_tx *tx, void *arg)
{
    struct usage_get_arg *a = arg;

    return a->ops->usage_get(tx, a->user_id, a->quota, a->window_start, a->used);
}

enum err store_usage_get(struct store *st, const char *user_id, const char *quota,
                         int64_t window_start, int64_t *used)
{
    struct usage_get_arg a = { st->ops, user_id, quota, window_start, used };
    enum err err;

    *used = 0;
    if (!store_arg_ok(user_id, USER_ID_MAX) || !store_arg_ok(quota, QUOTA_ID_MAX))
        return ERR_INVALID;
    err = store_run(st, STORE_RUN_READ, usage_get_tx, &a);
    if (err == ERR_NOT_FOUND) {
        *used = 0;
        err = ERR_OK;
    }
    return err;
}

#define EXTRAS_READ_MAX 64 /* rows of one user's extra units read with the counters */

struct usage_many_arg {
    struct store *st;
    const struct store_ops *ops;
    const char *user_id;
    size_t n;
    const char *const *quotas;
    const int64_t *window_starts;
    int64_t *used;
    struct usage_read *read; /* with the extras, or NULL */
};

/* Sets read[i]'s extra and balance from the user's rows of extra units. */
static enum err extras_into(struct usage_many_arg *a, struct store_tx *tx)
{
    struct quota_extra rows[EXTRAS_READ_MAX];
    int k = 0;
    enum err err = a->ops->extra_list(tx, a->user_id, EXTRAS_READ_MAX, rows, &k);

    for (int r = 0; r < k && !err; r++)
        for (size_t i = 0; i < a->n; i++) {
            if (strcmp(rows[r].quota, a->quotas[i]) != 0)
                continue;
            if (rows[r].window_start == QUOTA_BALANCE)
                a->read[i].balance = rows[r].units;
            else if (rows[r].window_start == a->window_starts[i])
                a->read[i].extra = rows[r].units;
        }
    return err;
}

_Static_assert(USAGE_LIST_MAX >= TIER_QUOTA_MAX, "a catalogue's quotas are read in one usage_list");

/* The counters at..at+n-1 (n at most USAGE_LIST_MAX) into a's arrays. */
static enum err usage_chunk(struct usage_many_arg *a, struct store_tx *tx, size_t at, size_t n)
{
    struct usage_row rows[USAGE_LIST_MAX];
    int k = 0;
    enum err err =
        a->ops->usage_list(tx, a->user_id, n, a->quotas + at, a->window_starts + at, rows, &k);

    for (int r = 0; r < k && !err; r++)
        for (size_t i = at; i < at + n; i++) {
            if (rows[r].window_start != a->window_starts[i] ||
                strcmp(rows[r].quota, a->quotas[i]) != 0)
                continue;
            if (a->used)
                a->used[i] = rows[r].used;
            if (a->read)
                a->read[i].used = rows[r].used;
        }
    return err;
}

/* A catalogue's counters in one statement (one snapshot, one round trip); absent ones stay 0. */
static enum err usage_many_tx(struct store_tx *tx, void *arg)
{
    struct usage_many_arg *a = arg;
    enum err err = ERR_OK;

    for (size_t at = 0; at < a->n && !err; at += USAGE_LIST_MAX)
        err = usage_chunk(a, tx, at, a->n - at < USAGE_LIST_MAX ? a->n - at : USAGE_LIST_MAX);
    if (err)
        return err;
    return a->read && store_extras_maybe(a->st, tx) ? extras_into(a, tx) : ERR_OK;
}

/* A usage read as usage_cache keeps it: per quota its id and NUL, then four integers. */
#define USAGE_PACKED_NUMS 4

/* Packs quotas[i] at window_starts[i] and read[i], i < n, into out; 0 when they do not fit. */
static size_t usage_pack(char *out, size_t size, size_t n, const char *const *quotas,
                         const int64_t *window_starts, const struct usage_read *read)
{
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        const int64_t nums[USAGE_PACKED_NUMS] = { window_starts[i], read[i].used, read[i].extra,
                                                  read[i].balance };
        size_t id = strlen(quotas[i]) + 1;

        if (id + sizeof(nums) > size - len)
            return 0;
        memcpy(out + len, quotas[i], id);
        memcpy(out + len + id, nums, sizeof(nums));
        len += id + sizeof(nums);
    }
    return len;
}

/* Sets out[i] from packed for each quota asked; false unless packed holds every one. */
static bool usage_unpack(const char *packed, size_t len, size_t n, const char *const *quotas,
                         const int64_t *window_starts, struct usage_read *out)
{
    size_t found = 0;

    for (size_t at = 0; at < len;) {
        int64_t nums[USAGE_PACKED_NUMS];
        const char *id = packed + at;
        const char *end = memchr(id, '\0', len - at);

        if (!end || (size_t)(packed + len - (end + 1)) < sizeof(nums))
            return false; /* never packed so */
        memcpy(nums, end + 1, sizeof(nums));
        at = (size_t)(end + 1 - packed) + sizeof(nums);
        for (size_t i = 0; i < n; i++)
            if (nums[0] == window_starts[i] && strcmp(id, quotas[i]) == 0) {
                out[i] = (struct usage_read){ nums[1], nums[2], nums[3] };
                found++;
            }
    }
    return found == n;
}

enum err store_usage_read_many(struct store *st, const char *user_id, size_t n,
                               const char *const *quotas, const int64_t *window_starts,
                               struct usage_read *out)
{
    struct usage_many_arg a = { st, st->ops, user_id, n, quotas, window_starts, NULL, out };
    char packed[ENTCACHE_DATA_MAX];
    struct entcache_ticket t;
    size_t len = 0;
    enum err err;

    for (size_t i = 0; i < n; i++) {
        out[i] = (struct usage_read){ 0 };
        if (!store_arg_ok(quotas[i], QUOTA_ID_MAX))
            return ERR_INVALID;
    }
    if (!store_arg_ok(user_id, USER_ID_MAX))
        return ERR_INVALID;
    if (n == 0)
        return ERR_OK;
    if (!st->usage_cache)
        return store_run(st, STORE_RUN_READ, usage_many_tx, &a);
    if (entcache_get_value(st->usage_cache, user_id, clock_mono_ms(), packed, &len, &t) &&
        usage_unpack(packed, len, n, quotas, window_starts, out))
        return ERR_OK;
    /* a miss, or other windows (a new day): read, and keep it unless a write came meanwhile */
    err = store_run(st, STORE_RUN_READ, usage_many_tx, &a);
    if (err == ERR_OK && (len = usage_pack(packed, sizeof(packed), n, quotas, window_starts, out)))
        (void)entcache_put_value(st->usage_cache, user_id, packed, len, &t);
    return err;
}

enum err store_usage_get_many(struct store *st, const char *user_id, size_t n,
                              const char *const *quotas, const int64_t *window_starts,
                              int64_t *used)
{
    struct usage_many_arg a = { st, st->ops, user_id, n, quotas, window_starts, used, NULL };

    for (size_t i = 0; i < n; i++) {
        used[i] = 0;
        if (!store_arg_ok(quotas[i], QUOTA_ID_MAX))
            return ERR_INVALID;
    }
    if (!store_arg_ok(user_id, USER_ID_MAX))
        return ERR_INVALID;
    return n == 0 ? ERR_OK : store_run(st, STORE_RUN_READ, usage_many_tx, &a);
}

/* The webhook inbox, read side */

struct event_arg {
    const struct store_ops *ops;
    const char *id;
    struct webhook_event *out;
    bool failed_only;
    int max;
    int *n;
    char **raw;
    size_t *raw_len;
};

static enum err event_get_tx(struct store_tx *tx, void *arg)
{
    struct event_arg *a = arg;

    return a->ops->event_get(tx, a->id, a->out);
}

enum err store_event_get(struct store *st, const char *id, struct webhook_event *out)
{
    struct event_arg a = { .ops = st->ops, .id = id, .out = out };

    if (!store_arg_ok(id, STRIPE_ID_MAX))
        return ERR_INVALID;
    return store_run(st, STORE_RUN_READ, event_get_tx, &a);
}

static enum err event_list_tx(struct store_tx *tx, void *arg)
{
    struct event_arg *a = arg;

    *a->n = 0;
    return a->ops->event_list(tx, a->failed_only, a->max, a->out, a->n);
}

enum err store_event_list(struct store *st, bool failed_only, int max, struct webhook_event *out,
                          int *n)
{
    struct event_arg a = { .ops = st->ops,
                           .out = out,
                           .failed_only = failed_only,
                           .max = max,
                           .n = n };
    enum err err;

    *n = 0;
    if (max < 0 || (max > 0 && !out))
        return ERR_INVALID;
    if (max == 0)
        return ERR_OK;
    err = store_run(st, STORE_RUN_READ, event_list_tx, &a);
    if (err)
        *n = 0;
    return err;
}

static enum err event_get_raw_tx(struct store_tx *tx, void *arg)
{
    struct event_arg *a = arg;
    enum err err = a->ops->event_get(tx, a->id, a->out);

    return err ? err : a->ops->event_raw(tx, a->id, a->raw, a->raw_len);
}

enum err store_event_get_raw(struct store *st, const char *id, struct webhook_event *out,
                             char **raw, size_t *raw_len)
{
    struct event_arg a = { .ops = st->ops, .id = id, .out = out, .raw = raw, .raw_len = raw_len };
    enum err err;

    *raw = NULL;
    *raw_len = 0;
    if (!store_arg_ok(id, STRIPE_ID_MAX))
        return ERR_INVALID;
    err = store_run(st, STORE_RUN_READ, event_get_raw_tx, &a);
    if (err) {
        free(*raw);
        *raw = NULL;
        *raw_len = 0;
    }
    return err;
}
