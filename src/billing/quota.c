/*
 * quota.c: quota windows (UTC day, ISO week, UTC month, billing period); pure functions of now,
 * no gmtime or mktime (banned): the month is integer calendar arithmetic, so the server's time
 * zone never matters.
 */
#include "billing/quota.h"

#include <string.h>

static const struct {
    enum quota_window window;
    const char *name;
} window_names[] = {
    { QUOTA_WINDOW_DAY, "day" },
    { QUOTA_WINDOW_WEEK, "week" },
    { QUOTA_WINDOW_MONTH, "month" },
    { QUOTA_WINDOW_BILLING_PERIOD, "billing_period" },
};

static int64_t clamp_time(int64_t t)
{
    if (t < QUOTA_TIME_MIN)
        return QUOTA_TIME_MIN;
    return t > QUOTA_TIME_MAX ? QUOTA_TIME_MAX : t;
}

/* Division rounding toward minus infinity: C's rounds toward zero, wrong before 1970. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
    return a - floor_div(a, b) * b;
}

int64_t quota_day_start(int64_t now)
{
    return floor_div(clamp_time(now), QUOTA_DAY_S) * QUOTA_DAY_S;
}

int64_t quota_week_start(int64_t now)
{
    int64_t day = floor_div(clamp_time(now), QUOTA_DAY_S);

    /* Day 0 (1970-01-01) was a Thursday, 3 days after a Monday. */
    return (day - floor_mod(day + 3, 7)) * QUOTA_DAY_S;
}

/*
 * Days since 1970-01-01 of the civil date y-m-d (proleptic Gregorian), and back: H. Hinnant's
 * algorithms, exact for every day of +-QUOTA_TIME_MAX seconds.
 */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = floor_div(y, 400);
    yoe = y - era * 400;                                   /* [0, 399] */
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
    int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = floor_div(z, 146097);
    doe = z - era * 146097;                                      /* [0, 146096] */
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    mp = (5 * doy + 2) / 153;                                    /* [0, 11], from March */
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

int64_t quota_month_start(int64_t now)
{
    int64_t day = floor_div(clamp_time(now), QUOTA_DAY_S), y, m, d;

    civil_from_days(day, &y, &m, &d);
    return (day - (d - 1)) * QUOTA_DAY_S;
}

int64_t quota_month_end(int64_t t)
{
    int64_t y, m, d;

    civil_from_days(floor_div(clamp_time(t), QUOTA_DAY_S), &y, &m, &d);
    return days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * QUOTA_DAY_S;
}

int64_t quota_window_start(enum quota_window w, int64_t now)
{
    switch (w) {
    case QUOTA_WINDOW_DAY:
        return quota_day_start(now);
    case QUOTA_WINDOW_WEEK:
        return quota_week_start(now);
    case QUOTA_WINDOW_MONTH:
    case QUOTA_WINDOW_BILLING_PERIOD:
        return quota_month_start(now);
    }
    return quota_day_start(now); /* not reached: -Wswitch covers every window */
}

int64_t quota_window_end(enum quota_window w, int64_t start)
{
    int64_t len = w == QUOTA_WINDOW_WEEK ? QUOTA_WEEK_S : QUOTA_DAY_S;

    if (w == QUOTA_WINDOW_MONTH || w == QUOTA_WINDOW_BILLING_PERIOD)
        return quota_month_end(start);
    /* Only the upper end can overflow; a start below QUOTA_TIME_MIN is a real window start. */
    return (start > QUOTA_TIME_MAX ? QUOTA_TIME_MAX : start) + len;
}

struct quota_span quota_span_of(enum quota_window w, struct quota_period p, int64_t now)
{
    struct quota_span s = { .counted = w };
    int64_t start = clamp_time(p.start), end = clamp_time(p.end), t = clamp_time(now), len;

    if (w != QUOTA_WINDOW_BILLING_PERIOD || p.start == 0 || p.end == 0 || end <= start) {
        if (w == QUOTA_WINDOW_BILLING_PERIOD)
            s.counted = QUOTA_WINDOW_MONTH;
        s.start = quota_window_start(w, now);
        s.end = quota_window_end(w, s.start);
        return s;
    }
    s.start = start;
    s.end = end;
    if (t < end)
        return s; /* also when it starts after now: Stripe's clock (or a test clock) is ahead */
    /* Bounds within +-2^60, so len, t - start and the results stay below 2^62. */
    len = end - start;
    s.start = start + floor_div(t - start, len) * len;
    s.end = s.start + len;
    return s;
}

const char *quota_window_name(enum quota_window w)
{
    for (size_t i = 0; i < ARRAY_SIZE(window_names); i++)
        if (window_names[i].window == w)
            return window_names[i].name;
    return "unknown";
}

enum err quota_window_parse(const char *name, enum quota_window *out)
{
    for (size_t i = 0; i < ARRAY_SIZE(window_names); i++) {
        if (strcmp(window_names[i].name, name) == 0) {
            *out = window_names[i].window;
            return ERR_OK;
        }
    }
    return ERR_INVALID;
}

int64_t quota_remaining(int64_t limit, int64_t used)
{
    if (limit < 0)
        return -1;
    return used >= limit ? 0 : limit - used;
}

int64_t quota_allowance(int64_t limit, int64_t extra)
{
    if (limit < 0 || extra <= 0)
        return limit;
    return extra > INT64_MAX - limit ? INT64_MAX : limit + extra;
}

int64_t quota_remaining_extra(int64_t limit, int64_t extra, int64_t balance, int64_t used)
{
    int64_t allowance, left;

    if (limit < 0)
        return -1;
    balance = balance > 0 ? balance : 0;
    allowance = quota_allowance(limit, extra);
    left = used >= allowance ? 0 : allowance - used;
    return balance > INT64_MAX - left ? INT64_MAX : left + balance;
}

void quota_outcome_settle(struct usage_outcome *o, bool granted, int64_t used)
{
    o->granted = granted;
    o->used = used;
    o->remaining = quota_remaining_extra(o->limit, o->extra, o->balance, used);
}
