/* test_status.c: Stripe's subscription statuses as an enum, and which are live (billing/status.h).
 */
#include "billing/status.h"
#include "t.h"

/* Every status by Stripe's name, and whether it is live (SPEC §4). */
static const struct {
    enum sub_status status;
    const char *name;
    bool live;
} statuses[] = {
    { SUB_STATUS_INCOMPLETE, "incomplete", false },
    { SUB_STATUS_INCOMPLETE_EXPIRED, "incomplete_expired", false },
    { SUB_STATUS_TRIALING, "trialing", true },
    { SUB_STATUS_ACTIVE, "active", true },
    { SUB_STATUS_PAST_DUE, "past_due", true },
    { SUB_STATUS_CANCELED, "canceled", false },
    { SUB_STATUS_UNPAID, "unpaid", false },
    { SUB_STATUS_PAUSED, "paused", false },
    { SUB_STATUS_UNKNOWN, "unknown", false },
    { SUB_STATUS_MISSING, "", false },
};

static void test_round_trip(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(statuses); i++) {
        const char *name = statuses[i].name;
        T_EQ_STR(sub_status_name(statuses[i].status), name, "name of '%s'", name);
        T_EQ_I64(sub_status_parse(name), statuses[i].status, "parse '%s'", name);
        T_EQ_I64(sub_status_parse(sub_status_name(statuses[i].status)), statuses[i].status,
                 "'%s' round trips", name);
        T_OK(sub_status_is_live(statuses[i].status) == statuses[i].live, "'%s' is%s live", name,
             statuses[i].live ? "" : " not");
    }
}

/* Strings that are not Stripe's names: none at all, or one this build does not know. */
static void test_other_strings(void)
{
    static const struct {
        const char *text; /* NULL: no string */
        enum sub_status want;
    } rows[] = {
        { NULL, SUB_STATUS_MISSING },
        { "", SUB_STATUS_MISSING },
        { "frobnicated", SUB_STATUS_UNKNOWN },
        { "Active", SUB_STATUS_UNKNOWN },
        { "active ", SUB_STATUS_UNKNOWN },
        { " active", SUB_STATUS_UNKNOWN },
        { "past-due", SUB_STATUS_UNKNOWN },
        { "incomplete_", SUB_STATUS_UNKNOWN },
        { "incomplete_expired_", SUB_STATUS_UNKNOWN },
    };

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        const char *shown = rows[i].text ? rows[i].text : "(null)";
        enum sub_status st = sub_status_parse(rows[i].text);
        T_EQ_STR(sub_status_name(st), sub_status_name(rows[i].want), "parse '%s'", shown);
        T_OK(!sub_status_is_live(st), "'%s' is not live", shown);
    }
}

/* A value outside the enum (memory gone wrong) is named as unknown and is not live. */
static void test_out_of_range(void)
{
    enum sub_status st = (enum sub_status)(SUB_STATUS_PAUSED + 1);

    T_EQ_STR(sub_status_name(st), "unknown", "a value past the last is named unknown");
    T_OK(!sub_status_is_live(st), "and is not live");
}

int main(void)
{
    test_round_trip();
    test_other_strings();
    test_out_of_range();
    return t_done();
}
