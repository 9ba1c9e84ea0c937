/* test_entitlement.c: the effective-tier rules of SPEC §4, one row per case. */
#include "t.h"

#include "billing/entitlement.h"
#include "billing/status.h"

#define T0    INT64_C(1800000000) /* period start */
#define DAY   INT64_C(86400)
#define T1    (T0 + 30 * DAY) /* period end */
#define GRACE (3 * DAY)

static const struct {
    const char *name;
    enum sub_status status;
    bool cancel_at_period_end;
    int64_t cancel_at;
    int64_t past_due_since;
    int64_t now;
    bool grants;
    enum entitlement_reason reason;
    int64_t until;
} rows[] = {
    { "active mid-period", SUB_STATUS_ACTIVE, false, 0, 0, T0 + DAY, true, ENT_ACTIVE, 0 },
    { "active past period end (renewal not seen yet)", SUB_STATUS_ACTIVE, false, 0, 0, T1 + DAY,
      true, ENT_ACTIVE, 0 },
    { "trialing", SUB_STATUS_TRIALING, false, 0, 0, T0 + DAY, true, ENT_TRIALING, 0 },
    { "cancel at period end, before the end", SUB_STATUS_ACTIVE, true, 0, 0, T1 - 1, true,
      ENT_ENDING, T1 },
    { "cancel at period end, at the end", SUB_STATUS_ACTIVE, true, 0, 0, T1, false,
      ENT_PERIOD_ENDED, 0 },
    { "cancel_at in the future", SUB_STATUS_ACTIVE, false, T0 + 10 * DAY, 0, T0 + DAY, true,
      ENT_ENDING, T0 + 10 * DAY },
    { "cancel_at reached", SUB_STATUS_ACTIVE, false, T0 + 10 * DAY, 0, T0 + 10 * DAY, false,
      ENT_PERIOD_ENDED, 0 },
    { "trial cancelling at period end, before", SUB_STATUS_TRIALING, true, 0, 0, T0, true,
      ENT_ENDING, T1 },
    { "past_due just now", SUB_STATUS_PAST_DUE, false, 0, T0 + DAY, T0 + DAY, true,
      ENT_PAST_DUE_GRACE, T0 + DAY + GRACE },
    { "past_due, one second before grace ends", SUB_STATUS_PAST_DUE, false, 0, T0, T0 + GRACE - 1,
      true, ENT_PAST_DUE_GRACE, T0 + GRACE },
    { "past_due, grace ended one second ago", SUB_STATUS_PAST_DUE, false, 0, T0, T0 + GRACE + 1,
      false, ENT_PAST_DUE_EXPIRED, 0 },
    { "past_due, grace ends exactly now", SUB_STATUS_PAST_DUE, false, 0, T0, T0 + GRACE, false,
      ENT_PAST_DUE_EXPIRED, 0 },
    { "past_due with unknown start uses the period start", SUB_STATUS_PAST_DUE, false, 0, 0,
      T0 + DAY, true, ENT_PAST_DUE_GRACE, T0 + GRACE },
    { "past_due and cancelling sooner than grace", SUB_STATUS_PAST_DUE, true, 0, T1 - DAY, T1 - 1,
      true, ENT_PAST_DUE_GRACE, T1 },
    { "canceled", SUB_STATUS_CANCELED, false, 0, 0, T0 + DAY, false, ENT_INACTIVE, 0 },
    { "unpaid", SUB_STATUS_UNPAID, false, 0, 0, T0 + DAY, false, ENT_INACTIVE, 0 },
    { "incomplete", SUB_STATUS_INCOMPLETE, false, 0, 0, T0 + DAY, false, ENT_INACTIVE, 0 },
    { "incomplete_expired", SUB_STATUS_INCOMPLETE_EXPIRED, false, 0, 0, T0, false, ENT_INACTIVE,
      0 },
    { "paused", SUB_STATUS_PAUSED, false, 0, 0, T0 + DAY, false, ENT_INACTIVE, 0 },
    { "an unknown status", SUB_STATUS_UNKNOWN, false, 0, 0, T0 + DAY, false, ENT_INACTIVE, 0 },
    { "no status", SUB_STATUS_MISSING, false, 0, 0, T0 + DAY, false, ENT_INACTIVE, 0 },
};

/* A grant is in force from its start to just before its end, unless revoked. */
static void test_grant_in_force(void)
{
    struct grant_record g = { .starts_at = 100, .ends_at = 200 };

    T_OK(!grant_in_force(&g, 99) && grant_in_force(&g, 100) && grant_in_force(&g, 199) &&
             !grant_in_force(&g, 200),
         "from starts_at to before ends_at");
    g.ends_at = 0;
    T_OK(grant_in_force(&g, INT64_C(253402300799)), "no end: in force for good");
    g.revoked_at = 150;
    T_OK(!grant_in_force(&g, 120), "revoked: not in force");
}

int main(void)
{
    struct entitlement none = entitlement_of(NULL, T0, GRACE);

    test_grant_in_force();

    T_OK(!none.grants && none.reason == ENT_NONE, "no subscription grants nothing");
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct subscription s = { 0 };
        s.status = rows[i].status;
        s.current_period_start = T0;
        s.current_period_end = T1;
        s.cancel_at_period_end = rows[i].cancel_at_period_end;
        s.cancel_at = rows[i].cancel_at;
        s.past_due_since = rows[i].past_due_since;
        struct entitlement e = entitlement_of(&s, rows[i].now, GRACE);
        T_EQ_I64(e.grants, rows[i].grants, "%s: grants", rows[i].name);
        T_EQ_STR(entitlement_reason_name(e.reason), entitlement_reason_name(rows[i].reason),
                 "%s: reason", rows[i].name);
        T_EQ_I64(e.until, rows[i].until, "%s: until", rows[i].name);
    }
    {
        /* A stored time at the end of int64 (read back from a database): no overflow (UBSan). */
        struct subscription s = { .status = SUB_STATUS_PAST_DUE };
        s.past_due_since = INT64_MAX - 1;
        struct entitlement e = entitlement_of(&s, INT64_MAX - 1, GRACE);
        T_OK(e.grants && e.until == INT64_MAX, "past_due since the end of time: grace saturates");
        s.past_due_since = 0;
        s.current_period_start = INT64_MIN + 1;
        e = entitlement_of(&s, 0, -GRACE);
        T_OK(!e.grants, "a negative grace from the distant past: saturates, expired");
        s.current_period_start = T0;
        s.past_due_since = T0 + 40 * DAY; /* a test clock's time, ahead of ours */
        e = entitlement_of(&s, T0, GRACE);
        T_OK(e.grants && e.until == T0 + GRACE,
             "past_due since a time ahead: the grace runs from now");
        e = entitlement_of(&s, T0, 0);
        T_OK(!e.grants, "past_due since a time ahead, no grace: no tier");
    }
    return t_done();
}
