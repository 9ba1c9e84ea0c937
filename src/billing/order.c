/*
 * order.c: the ordering rule of subscription and invoice states. Each key is one comparator in
 * a table, so the rule in order.h reads the same as the code.
 */
#include "billing/order.h"

#include <string.h>

#include "base/base.h"

/* <0, 0, >0 like strcmp: how a compares with b on one key. */
typedef int (*sub_key_fn)(const struct subscription *a, const struct subscription *b);

struct status_rank {
    const char *status;
    int rank;
};

/* Unknown statuses rank 0, with incomplete: the least advanced. */
static const struct status_rank sub_ranks[] = {
    { "incomplete", 0 },         { "trialing", 1 }, { "active", 2 },
    { "past_due", 3 },           { "unpaid", 4 },   { "paused", 5 },
    { "canceled", 6 }, /* terminal from here */
    { "incomplete_expired", 6 },
};

#define SUB_TERMINAL_RANK 6

static const struct status_rank invoice_ranks[] = {
    { "draft", 0 }, { "open", 1 }, { "uncollectible", 2 }, { "paid", 3 }, { "void", 3 },
};

static int rank_of(const struct status_rank *table, size_t n, const char *status)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(table[i].status, status) == 0)
            return table[i].rank;
    return 0;
}

static int sub_rank(const struct subscription *s)
{
    return rank_of(sub_ranks, ARRAY_SIZE(sub_ranks), s->status);
}

static int cmp_i64(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

static int key_terminal(const struct subscription *a, const struct subscription *b)
{
    return (sub_rank(a) >= SUB_TERMINAL_RANK) - (sub_rank(b) >= SUB_TERMINAL_RANK);
}

static int key_period(const struct subscription *a, const struct subscription *b)
{
    return cmp_i64(a->current_period_start, b->current_period_start);
}

static int key_updated(const struct subscription *a, const struct subscription *b)
{
    return cmp_i64(a->stripe_updated, b->stripe_updated);
}

static int key_status(const struct subscription *a, const struct subscription *b)
{
    return sub_rank(a) - sub_rank(b);
}

static int key_cancel(const struct subscription *a, const struct subscription *b)
{
    int c = (int)a->cancel_at_period_end - (int)b->cancel_at_period_end;

    if (c == 0)
        c = cmp_i64(a->canceled_at, b->canceled_at);
    if (c == 0)
        c = cmp_i64(a->cancel_at, b->cancel_at);
    return c;
}

static int key_rest(const struct subscription *a, const struct subscription *b)
{
    int c = cmp_i64(a->current_period_end, b->current_period_end);

    if (c == 0)
        c = cmp_i64(a->trial_end, b->trial_end);
    if (c == 0)
        c = strcmp(a->status, b->status);
    if (c == 0)
        c = strcmp(a->price_id, b->price_id);
    return c;
}

static const sub_key_fn sub_keys[] = {
    key_terminal, key_period, key_updated, key_status, key_cancel, key_rest,
};

bool subscription_state_is_newer(const struct subscription *a, const struct subscription *b)
{
    for (size_t i = 0; i < ARRAY_SIZE(sub_keys); i++) {
        int c = sub_keys[i](a, b);
        if (c != 0)
            return c > 0;
    }
    return false;
}

static bool is_past_due(const struct subscription *s)
{
    return strcmp(s->status, "past_due") == 0;
}

/* Both past_due within one period: the grace clock runs from the earlier of the two. */
static bool same_past_due(const struct subscription *a, const struct subscription *b)
{
    return is_past_due(a) && is_past_due(b) && b->past_due_since > 0 &&
           a->current_period_start == b->current_period_start;
}

static int64_t min_i64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

bool subscription_state_merge(const struct subscription *stored,
                              const struct subscription *incoming, struct subscription *out)
{
    if (stored && !subscription_state_is_newer(incoming, stored)) {
        *out = *stored;
        if (!same_past_due(incoming, stored) || incoming->stripe_updated >= stored->past_due_since)
            return false;
        out->past_due_since = incoming->stripe_updated; /* an earlier failure arrived late */
        return true;
    }
    *out = *incoming;
    out->past_due_since = 0;
    if (!is_past_due(incoming))
        return true;
    out->past_due_since = incoming->stripe_updated;
    if (stored && same_past_due(incoming, stored))
        out->past_due_since = min_i64(stored->past_due_since, incoming->stripe_updated);
    return true;
}

bool invoice_state_supersedes(const struct invoice *incoming, const struct invoice *stored)
{
    return rank_of(invoice_ranks, ARRAY_SIZE(invoice_ranks), incoming->status) >=
           rank_of(invoice_ranks, ARRAY_SIZE(invoice_ranks), stored->status);
}
