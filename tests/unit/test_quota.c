/*
 * test_quota.c: quota windows; expected values computed with GNU `date -u`, not with our code
 * (the extremes, out of date's range, with Python's datetime shifted by whole 400-year cycles).
 */
#include "billing/quota.h"
#include "t.h"

static const struct {
    const char *what;
    int64_t now;
    int64_t day_start;
    int64_t week_start;
} rows[] = {
    { "epoch (Thursday)", 0, 0, -259200 },
    { "1969-12-31 23:59:59 (before 1970)", -1, -86400, -259200 },
    { "1969-12-29 00:00:00 Monday", -259200, -259200, -259200 },
    { "1969-12-28 23:59:59 Sunday", -259201, -345600, -864000 },
    { "1900-01-01 00:00:00 Monday", -2208988800, -2208988800, -2208988800 },
    { "1899-12-31 23:59:59 Sunday", -2208988801, -2209075200, -2209593600 },
    { "2024-12-29 23:59:59 Sunday", 1735516799, 1735430400, 1734912000 },
    { "2024-12-30 00:00:00 Monday", 1735516800, 1735516800, 1735516800 },
    { "2024-12-30 00:00:01 Monday", 1735516801, 1735516800, 1735516800 },
    { "2024-12-31 12:00:00 (week spans 2024/2025)", 1735646400, 1735603200, 1735516800 },
    { "2027-01-01 08:30:00 Friday (week from 2026)", 1798792200, 1798761600, 1798416000 },
    { "2027-01-03 23:59:59 Sunday", 1799020799, 1798934400, 1798416000 },
    { "2027-01-04 00:00:00 Monday", 1799020800, 1799020800, 1799020800 },
    { "2021-01-03 23:59:59 Sunday (ISO week 53 of 2020)", 1609718399, 1609632000, 1609113600 },
    { "2024-01-01 00:00:00 Monday (new year on a Monday)", 1704067200, 1704067200, 1704067200 },
    { "2024-02-29 13:14:15 leap day", 1709212455, 1709164800, 1708905600 },
};

static const struct {
    const char *what;
    enum quota_window w;
    int64_t now;
    int64_t start;
    int64_t end;
} windows[] = {
    { "day window of leap day", QUOTA_WINDOW_DAY, 1709212455, 1709164800, 1709251200 },
    { "week window across 2026/2027", QUOTA_WINDOW_WEEK, 1798792200, 1798416000, 1799020800 },
    { "week window before 1970", QUOTA_WINDOW_WEEK, -1, -259200, 345600 },
    { "day window clamps a huge time", QUOTA_WINDOW_DAY, INT64_MAX, 1152921504606796800,
      1152921504606883200 },
    { "week window clamps a tiny time", QUOTA_WINDOW_WEEK, INT64_MIN, -1152921504607142400,
      -1152921504606537600 },
};

/* The UTC calendar month holding now: its 1st 00:00 UTC and the next 1st. */
static const struct {
    const char *what;
    int64_t now;
    int64_t start;
    int64_t end;
} months[] = {
    { "2024-12-31 23:59:59 (last second of a year)", 1735689599, 1733011200, 1735689600 },
    { "2025-01-01 00:00:00 (first second of a year)", 1735689600, 1735689600, 1738368000 },
    { "2024-11-30 23:59:59 (last second of a 30-day month)", 1733011199, 1730419200, 1733011200 },
    { "2024-12-01 00:00:00 (the 1st itself)", 1733011200, 1733011200, 1735689600 },
    { "2024-02-29 12:00:00 (leap year)", 1709208000, 1706745600, 1709251200 },
    { "2024-03-01 00:00:00 (after a leap February)", 1709251200, 1709251200, 1711929600 },
    { "2023-02-28 23:59:59 (common year)", 1677628799, 1675209600, 1677628800 },
    { "2100-02-28 12:00:00 (2100 is not a leap year)", 4107499200, 4105123200, 4107542400 },
    { "2000-02-29 23:59:59 (2000 is a leap year)", 951868799, 949363200, 951868800 },
    { "1969-12-31 23:59:59 (before 1970)", -1, -2678400, 0 },
    { "1970-01-01 00:00:00 (epoch)", 0, 0, 2678400 },
    { "1900-02-28 00:00:00 (1900 is not a leap year)", -2203977600, -2206310400, -2203891200 },
    { "a huge time clamps", INT64_MAX, 1152921504605760000, 1152921504608438400 },
    { "a tiny time clamps", INT64_MIN, -1152921504608524800, -1152921504605846400 },
};

#define P_START INT64_C(1718409600) /* 2024-06-15 00:00:00 */
#define P_END   INT64_C(1721001600) /* 2024-07-15 00:00:00 */
#define P_LEN   (P_END - P_START)

/* A billing period quota: the period holding now, or the month without one. */
static const struct {
    const char *what;
    struct quota_period p;
    int64_t now;
    int64_t start;
    int64_t end;
    enum quota_window counted;
} periods[] = {
    { "inside the period",
      { P_START, P_END },
      P_START + 86400,
      P_START,
      P_END,
      QUOTA_WINDOW_BILLING_PERIOD },
    { "at its start", { P_START, P_END }, P_START, P_START, P_END, QUOTA_WINDOW_BILLING_PERIOD },
    { "its last second",
      { P_START, P_END },
      P_END - 1,
      P_START,
      P_END,
      QUOTA_WINDOW_BILLING_PERIOD },
    { "at its end, renewal not recorded yet: the next one",
      { P_START, P_END },
      P_END,
      P_END,
      P_END + P_LEN,
      QUOTA_WINDOW_BILLING_PERIOD },
    { "two lengths later",
      { P_START, P_END },
      P_END + P_LEN + 5,
      P_END + P_LEN,
      P_END + 2 * P_LEN,
      QUOTA_WINDOW_BILLING_PERIOD },
    { "long before its start: the period",
      { P_START, P_END },
      INT64_MIN,
      P_START,
      P_END,
      QUOTA_WINDOW_BILLING_PERIOD },
    { "before its start (Stripe's clock ahead): the period",
      { P_START, P_END },
      P_START - 1,
      P_START,
      P_END,
      QUOTA_WINDOW_BILLING_PERIOD },
    { "no subscription: the UTC month",
      { 0, 0 },
      P_START + 86400,
      1717200000,
      1719792000,
      QUOTA_WINDOW_MONTH },
    { "period unset (end only): the month", { 0, P_END }, -1, -2678400, 0, QUOTA_WINDOW_MONTH },
    { "period reversed: the month",
      { P_END, P_START },
      1735689599,
      1733011200,
      1735689600,
      QUOTA_WINDOW_MONTH },
    { "a period over all time clamps",
      { INT64_MIN, INT64_MAX },
      0,
      -(INT64_C(1) << 60),
      INT64_C(1) << 60,
      QUOTA_WINDOW_BILLING_PERIOD },
    { "a period beyond the bounds is none",
      { INT64_MAX - 1, INT64_MAX },
      0,
      0,
      2678400,
      QUOTA_WINDOW_MONTH },
    { "so is one before them", { INT64_MIN, INT64_MIN + 1 }, 0, 0, 2678400, QUOTA_WINDOW_MONTH },
    { "a one-second period far back",
      { QUOTA_TIME_MIN, QUOTA_TIME_MIN + 1 },
      INT64_MAX,
      (INT64_C(1) << 60),
      (INT64_C(1) << 60) + 1,
      QUOTA_WINDOW_BILLING_PERIOD },
};

static void test_months(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(months); i++) {
        struct quota_span s =
            quota_span_of(QUOTA_WINDOW_MONTH, (struct quota_period){ 0 }, months[i].now);
        T_EQ_I64(quota_month_start(months[i].now), months[i].start, "month start: %s",
                 months[i].what);
        T_EQ_I64(quota_month_end(months[i].now), months[i].end, "month end: %s", months[i].what);
        T_EQ_I64(quota_window_start(QUOTA_WINDOW_MONTH, months[i].now), months[i].start,
                 "month window start: %s", months[i].what);
        T_EQ_I64(quota_window_end(QUOTA_WINDOW_MONTH, months[i].start), months[i].end,
                 "month window end: %s", months[i].what);
        T_EQ_I64(s.start, months[i].start, "month span start: %s", months[i].what);
        T_EQ_I64(s.end, months[i].end, "month span end: %s", months[i].what);
        T_EQ_I64(s.counted, QUOTA_WINDOW_MONTH, "month span counted: %s", months[i].what);
    }
}

static void test_periods(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(periods); i++) {
        struct quota_span s =
            quota_span_of(QUOTA_WINDOW_BILLING_PERIOD, periods[i].p, periods[i].now);
        T_EQ_I64(s.start, periods[i].start, "period start: %s", periods[i].what);
        T_EQ_I64(s.end, periods[i].end, "period end: %s", periods[i].what);
        T_EQ_STR(quota_window_name(s.counted), quota_window_name(periods[i].counted),
                 "period counted: %s", periods[i].what);
    }
    /* Calendar windows ignore the period. */
    struct quota_span d =
        quota_span_of(QUOTA_WINDOW_DAY, (struct quota_period){ P_START, P_END }, P_END + 5);
    T_EQ_I64(d.start, P_END, "day span ignores the period");
    T_EQ_I64(d.end, P_END + 86400, "day span end");
    T_EQ_I64(d.counted, QUOTA_WINDOW_DAY, "day span counted");
}

static const struct {
    const char *name;
    enum err want;
    enum quota_window window;
} names[] = {
    { "day", ERR_OK, QUOTA_WINDOW_DAY },
    { "week", ERR_OK, QUOTA_WINDOW_WEEK },
    { "Week", ERR_INVALID, QUOTA_WINDOW_DAY },
    { "", ERR_INVALID, QUOTA_WINDOW_DAY },
    { "month", ERR_OK, QUOTA_WINDOW_MONTH },
    { "billing_period", ERR_OK, QUOTA_WINDOW_BILLING_PERIOD },
    { "Month", ERR_INVALID, QUOTA_WINDOW_DAY },
    { "billing-period", ERR_INVALID, QUOTA_WINDOW_DAY },
    { "year", ERR_INVALID, QUOTA_WINDOW_DAY },
};

static void test_names(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        enum quota_window w = QUOTA_WINDOW_DAY;
        T_EQ_I64(quota_window_parse(names[i].name, &w), names[i].want, "parse '%s'", names[i].name);
        T_EQ_I64(w, names[i].window, "window of '%s'", names[i].name);
        if (names[i].want == ERR_OK)
            T_EQ_STR(quota_window_name(w), names[i].name, "name round-trips '%s'", names[i].name);
    }
}

/* The allowance and what is left with extra units and a balance, at the edges of int64. */
static void test_allowance(void)
{
    T_EQ_I64(quota_allowance(10, 5), 15, "limit + extra");
    T_EQ_I64(quota_allowance(10, 0), 10, "no extra");
    T_EQ_I64(quota_allowance(10, -3), 10, "extra below 0 counts as none");
    T_EQ_I64(quota_allowance(-1, 5), -1, "unlimited stays unlimited");
    T_EQ_I64(quota_allowance(INT64_MAX - 1, 5), INT64_MAX, "saturates");
    T_EQ_I64(quota_allowance(0, INT64_MAX), INT64_MAX, "all extra");
    T_EQ_I64(quota_remaining_extra(10, 5, 3, 12), 6, "3 of the allowance and the balance of 3");
    T_EQ_I64(quota_remaining_extra(10, 0, 3, 12), 3, "past the allowance: the balance");
    T_EQ_I64(quota_remaining_extra(-1, 5, 3, 12), -1, "unlimited");
    T_EQ_I64(quota_remaining_extra(INT64_MAX, 5, INT64_MAX, 0), INT64_MAX, "saturates");
}

int main(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        T_EQ_I64(quota_day_start(rows[i].now), rows[i].day_start, "day start: %s", rows[i].what);
        T_EQ_I64(quota_week_start(rows[i].now), rows[i].week_start, "week start: %s", rows[i].what);
    }
    for (size_t i = 0; i < ARRAY_SIZE(windows); i++) {
        int64_t start = quota_window_start(windows[i].w, windows[i].now);
        T_EQ_I64(start, windows[i].start, "start: %s", windows[i].what);
        T_EQ_I64(quota_window_end(windows[i].w, start), windows[i].end, "end: %s", windows[i].what);
    }
    test_months();
    test_periods();
    test_names();
    test_allowance();
    return t_done();
}
