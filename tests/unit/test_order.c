/* test_order.c: the ordering rule of subscription and invoice states (billing/order.h). */
#include <string.h>

#include "base/str.h"
#include "billing/order.h"
#include "billing/status.h"
#include "t.h"

/* The fields the rule looks at, one row per state. */
struct state {
    enum sub_status status;
    int64_t period_start;
    int64_t updated;
    bool cancel_at_period_end;
    int64_t canceled_at;
    int64_t period_end;
    const char *price;
};

/* Rows name what matters to them; the rest is zero. status: ACTIVE for SUB_STATUS_ACTIVE. */
#define ST(status, start, updated)                             \
    {                                                          \
        SUB_STATUS_##status, start, updated, false, 0, 0, NULL \
    }
#define STC(status, start, updated, c, at)                  \
    {                                                       \
        SUB_STATUS_##status, start, updated, c, at, 0, NULL \
    }
#define STX(status, start, updated, c, at, end, price)         \
    {                                                          \
        SUB_STATUS_##status, start, updated, c, at, end, price \
    }

static struct subscription sub_of(const struct state *st)
{
    struct subscription s;

    memset(&s, 0, sizeof(s));
    (void)!str_copy(s.id, sizeof(s.id), "sub_1"); /* fits */
    s.status = st->status;
    (void)!str_copy(s.price_id, sizeof(s.price_id), st->price ? st->price : "price_1");
    s.current_period_start = st->period_start;
    s.current_period_end = st->period_end ? st->period_end : st->period_start + 100;
    s.stripe_updated = st->updated;
    s.cancel_at_period_end = st->cancel_at_period_end;
    s.canceled_at = st->canceled_at;
    return s;
}

static void test_is_newer(void)
{
    static const struct {
        const char *name;
        struct state a, b; /* want: a newer than b (and so b not newer than a) */
    } rows[] = {
        { "later event, same period", ST(ACTIVE, 100, 20), ST(ACTIVE, 100, 10) },
        { "later period beats later event time", ST(ACTIVE, 200, 10), ST(ACTIVE, 100, 20) },
        { "canceled beats a later period", ST(CANCELED, 100, 10), ST(ACTIVE, 200, 20) },
        { "incomplete_expired is terminal", ST(INCOMPLETE_EXPIRED, 0, 1), ST(ACTIVE, 5, 9) },
        { "same second: active after trialing", ST(ACTIVE, 100, 10), ST(TRIALING, 100, 10) },
        { "same second: active after incomplete", ST(ACTIVE, 1, 10), ST(INCOMPLETE, 1, 10) },
        { "same second: past_due after active", ST(PAST_DUE, 100, 10), ST(ACTIVE, 100, 10) },
        { "same second: unpaid after past_due", ST(UNPAID, 100, 10), ST(PAST_DUE, 100, 10) },
        { "same second: paused after trialing", ST(PAUSED, 100, 10), ST(TRIALING, 100, 10) },
        { "same second: unknown status ranks lowest", ST(TRIALING, 1, 1), ST(UNKNOWN, 1, 1) },
        { "same second: cancel flag set after unset", STC(ACTIVE, 100, 10, true, 10),
          STC(ACTIVE, 100, 10, false, 0) },
        { "same second: later canceled_at", STC(ACTIVE, 1, 1, true, 9),
          STC(ACTIVE, 1, 1, true, 8) },
        { "both canceled: later event", STC(CANCELED, 1, 9, true, 5),
          STC(CANCELED, 1, 8, true, 5) },
        { "rest: later period end", STX(ACTIVE, 1, 1, false, 0, 300, NULL),
          STX(ACTIVE, 1, 1, false, 0, 200, NULL) },
        { "rest: price breaks the tie", STX(ACTIVE, 1, 1, false, 0, 0, "price_b"),
          STX(ACTIVE, 1, 1, false, 0, 0, "price_a") },
        { "rest: incomplete_expired after canceled", ST(INCOMPLETE_EXPIRED, 1, 1),
          ST(CANCELED, 1, 1) },
        { "rest: unknown after incomplete", ST(UNKNOWN, 1, 1), ST(INCOMPLETE, 1, 1) },
        { "rest: incomplete after no status", ST(INCOMPLETE, 1, 1), ST(MISSING, 1, 1) },
    };

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct subscription a = sub_of(&rows[i].a), b = sub_of(&rows[i].b);
        T_OK(subscription_state_is_newer(&a, &b), "%s: newer", rows[i].name);
        T_OK(!subscription_state_is_newer(&b, &a), "%s: not the other way", rows[i].name);
    }
}

static void test_equal_is_not_newer(void)
{
    static const struct state st = STC(ACTIVE, 100, 10, true, 5);
    struct subscription a = sub_of(&st), b = sub_of(&st);

    T_OK(!subscription_state_is_newer(&a, &b), "an equal state is not newer");
}

static void test_merge_past_due(void)
{
    static const struct {
        const char *name;
        bool has_stored;
        bool want_write;
        struct state stored;
        int64_t stored_since;
        struct state incoming;
        int64_t want_since;
        enum sub_status want_status;
    } rows[] = {
        { "first state past_due", false, true, ST(MISSING, 0, 0), 0, ST(PAST_DUE, 1, 50), 50,
          SUB_STATUS_PAST_DUE },
        { "becomes past_due", true, true, ST(ACTIVE, 1, 40), 0, ST(PAST_DUE, 1, 50), 50,
          SUB_STATUS_PAST_DUE },
        { "stays past_due: kept", true, true, ST(PAST_DUE, 1, 50), 50, ST(PAST_DUE, 1, 60), 50,
          SUB_STATUS_PAST_DUE },
        { "past_due in a new period: restarts", true, true, ST(PAST_DUE, 1, 50), 50,
          ST(PAST_DUE, 2, 60), 60, SUB_STATUS_PAST_DUE },
        { "paid: cleared", true, true, ST(PAST_DUE, 1, 50), 50, ST(ACTIVE, 1, 70), 0,
          SUB_STATUS_ACTIVE },
        { "earlier failure arrives late: lowered", true, true, ST(PAST_DUE, 1, 60), 60,
          ST(PAST_DUE, 1, 50), 50, SUB_STATUS_PAST_DUE },
        { "older active arrives late: nothing", true, false, ST(PAST_DUE, 1, 60), 60,
          ST(ACTIVE, 1, 50), 60, SUB_STATUS_PAST_DUE },
        { "duplicate: nothing", true, false, ST(PAST_DUE, 1, 60), 60, ST(PAST_DUE, 1, 60), 60,
          SUB_STATUS_PAST_DUE },
    };

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct subscription stored = sub_of(&rows[i].stored), in = sub_of(&rows[i].incoming), out;
        bool write;
        stored.past_due_since = rows[i].stored_since;
        in.past_due_since = 12345; /* ignored: the merge computes it */
        write = subscription_state_merge(rows[i].has_stored ? &stored : NULL, &in, &out);
        T_EQ_I64(write, rows[i].want_write, "%s: write", rows[i].name);
        T_EQ_I64(out.past_due_since, rows[i].want_since, "%s: past_due_since", rows[i].name);
        T_EQ_STR(sub_status_name(out.status), sub_status_name(rows[i].want_status), "%s: status",
                 rows[i].name);
    }
}

static void test_invoice(void)
{
    static const struct {
        const char *incoming, *stored;
        bool want;
    } rows[] = {
        { "paid", "open", true },          { "open", "paid", false },
        { "open", "open", true },          { "open", "draft", true },
        { "uncollectible", "open", true }, { "paid", "uncollectible", true },
        { "void", "open", true },          { "open", "void", false },
        { "draft", "paid", false },
    };

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct invoice in, stored;
        memset(&in, 0, sizeof(in));
        memset(&stored, 0, sizeof(stored));
        (void)!str_copy(in.status, sizeof(in.status), rows[i].incoming);
        (void)!str_copy(stored.status, sizeof(stored.status), rows[i].stored);
        T_EQ_I64(invoice_state_supersedes(&in, &stored), rows[i].want, "invoice %s over %s",
                 rows[i].incoming, rows[i].stored);
    }
}

/* Two states of one second that differ only in a plan change in flight still converge. */
static void test_plan_fields_converge(void)
{
    static const struct state st = ST(ACTIVE, 100, 50);
    struct subscription a = sub_of(&st), b = sub_of(&st);

    (void)!str_copy(b.schedule_id, sizeof(b.schedule_id), "sub_sched_1");
    T_OK(subscription_state_is_newer(&a, &b) != subscription_state_is_newer(&b, &a),
         "a schedule: exactly one is newer");
    b = a;
    (void)!str_copy(b.pending_price_id, sizeof(b.pending_price_id), "price_2");
    T_OK(subscription_state_is_newer(&a, &b) != subscription_state_is_newer(&b, &a),
         "a pending update: exactly one is newer");
    b = a;
    (void)!str_copy(b.latest_invoice, sizeof(b.latest_invoice), "in_2");
    T_OK(subscription_state_is_newer(&a, &b) != subscription_state_is_newer(&b, &a),
         "another latest invoice: exactly one is newer");
    b = a;
    b.pending_expires_at = 7;
    T_OK(subscription_state_is_newer(&a, &b) != subscription_state_is_newer(&b, &a),
         "another expiry: exactly one is newer");
}

static struct schedule_record sched_of(const char *status, int64_t updated, int64_t next_at,
                                       const char *next_price)
{
    struct schedule_record s;

    memset(&s, 0, sizeof(s));
    (void)!str_copy(s.id, sizeof(s.id), "sub_sched_1");
    (void)!str_copy(s.status, sizeof(s.status), status);
    (void)!str_copy(s.next_price_id, sizeof(s.next_price_id), next_price);
    s.stripe_updated = updated;
    s.next_at = next_at;
    return s;
}

static void test_schedule(void)
{
    static const struct {
        const char *in_status;
        int64_t in_updated, in_next;
        const char *st_status;
        int64_t st_updated, st_next;
        bool newer;
        const char *why;
    } rows[] = {
        { "active", 20, 100, "active", 10, 100, true, "a later state" },
        { "active", 10, 100, "active", 20, 100, false, "an earlier state" },
        { "released", 10, 0, "active", 20, 100, true, "an end beats a later live state" },
        { "active", 30, 100, "released", 20, 0, false, "a schedule never comes back" },
        { "completed", 30, 0, "released", 20, 0, true, "two ends: the later" },
        { "active", 10, 100, "active", 10, 100, false, "the same state is not newer" },
    };

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct schedule_record in =
            sched_of(rows[i].in_status, rows[i].in_updated, rows[i].in_next, "price_2");
        struct schedule_record st =
            sched_of(rows[i].st_status, rows[i].st_updated, rows[i].st_next, "price_2");
        T_EQ_I64(schedule_state_is_newer(&in, &st), rows[i].newer, "schedule: %s", rows[i].why);
    }
    struct schedule_record x = sched_of("active", 10, 100, "price_2");
    struct schedule_record y = sched_of("active", 10, 200, "price_3");
    T_OK(schedule_state_is_newer(&x, &y) != schedule_state_is_newer(&y, &x),
         "one second, another next phase: exactly one is newer");
    T_OK(schedule_has_ended(&(struct schedule_record){ .status = "canceled" }) &&
             !schedule_has_ended(&(struct schedule_record){ .status = "not_started" }),
         "canceled has ended, not_started has not");
}

int main(void)
{
    test_plan_fields_converge();
    test_schedule();
    test_is_newer();
    test_equal_is_not_newer();
    test_merge_past_due();
    test_invoice();
    return t_done();
}
