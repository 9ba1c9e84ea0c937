/*
 * order.c: the ordering rule of subscription and invoice states. Each key is one comparator in
 * a table, so the rule in order.h reads the same as the code.
 */
#include "billing/order.h"

#include <string.h>

#include "base/base.h"
#include "billing/status.h"

/* <0, 0, >0 like strcmp: how a compares with b on one key. */
typedef int (*sub_key_fn)(const struct subscription *a, const struct subscription *b);

/*
 * Each subscription status's place in the rule (order.h). rank is key 4, how far along the
 * status is; from SUB_TERMINAL_RANK on it is terminal (key 1). tie settles key 6 between the
 * statuses of one rank in the order of their Stripe names, the order the rule used when
 * statuses were strings, so stored states compare as they did. Unknown statuses (and none at
 * all) rank 0, with incomplete: the least advanced.
 */
struct sub_place {
    int rank;
    int tie;
};

static const struct sub_place sub_places[] = {
    [SUB_STATUS_MISSING] = { 0, 0 },
    [SUB_STATUS_INCOMPLETE] = { 0, 1 },
    [SUB_STATUS_UNKNOWN] = { 0, 2 },
    [SUB_STATUS_TRIALING] = { 1, 0 },
    [SUB_STATUS_ACTIVE] = { 2, 0 },
    [SUB_STATUS_PAST_DUE] = { 3, 0 },
    [SUB_STATUS_UNPAID] = { 4, 0 },
    [SUB_STATUS_PAUSED] = { 5, 0 },
    [SUB_STATUS_CANCELED] = { 6, 0 }, /* terminal from here */
    [SUB_STATUS_INCOMPLETE_EXPIRED] = { 6, 1 },
};

#define SUB_TERMINAL_RANK 6

struct status_rank {
    const char *status;
    int rank;
};

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

static struct sub_place sub_place(const struct subscription *s)
{
    if ((size_t)s->status < ARRAY_SIZE(sub_places))
        return sub_places[s->status];
    return sub_places[SUB_STATUS_UNKNOWN];
}

static int sub_rank(const struct subscription *s)
{
    return sub_place(s).rank;
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

/*
 * Stripe's time; on a tie, a state Stripe answered directly wins: it is the whole state as of
 * that second, every event of the second included.
 */
static int key_updated(const struct subscription *a, const struct subscription *b)
{
    int c = cmp_i64(a->stripe_updated, b->stripe_updated);

    return c ? c : (int)a->answered - (int)b->answered;
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
        c = sub_place(a).tie - sub_place(b).tie; /* the ranks are equal by now (key 4) */
    if (c == 0)
        c = strcmp(a->price_id, b->price_id);
    if (c == 0)
        c = strcmp(a->schedule_id, b->schedule_id);
    if (c == 0)
        c = strcmp(a->pending_price_id, b->pending_price_id);
    if (c == 0)
        c = cmp_i64(a->pending_expires_at, b->pending_expires_at);
    if (c == 0)
        c = strcmp(a->latest_invoice, b->latest_invoice);
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
    return s->status == SUB_STATUS_PAST_DUE;
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

bool schedule_has_ended(const struct schedule_record *s)
{
    return strcmp(s->status, "not_started") != 0 && strcmp(s->status, "active") != 0;
}

bool schedule_state_is_newer(const struct schedule_record *a, const struct schedule_record *b)
{
    int c = (int)schedule_has_ended(a) - (int)schedule_has_ended(b);

    if (c == 0)
        c = cmp_i64(a->stripe_updated, b->stripe_updated);
    if (c == 0)
        c = strcmp(a->status, b->status);
    if (c == 0)
        c = cmp_i64(a->next_at, b->next_at);
    if (c == 0)
        c = strcmp(a->next_price_id, b->next_price_id);
    return c > 0;
}

bool invoice_state_supersedes(const struct invoice *incoming, const struct invoice *stored)
{
    return rank_of(invoice_ranks, ARRAY_SIZE(invoice_ranks), incoming->status) >=
           rank_of(invoice_ranks, ARRAY_SIZE(invoice_ranks), stored->status);
}
