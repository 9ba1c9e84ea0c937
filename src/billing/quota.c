/* quota.c: quota windows (UTC day, ISO week); pure functions of now, no gmtime (banned). */
#include "billing/quota.h"

#include <string.h>

static const struct {
    enum quota_window window;
    const char *name;
} window_names[] = {
    { QUOTA_WINDOW_DAY, "day" },
    { QUOTA_WINDOW_WEEK, "week" },
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

int64_t quota_window_start(enum quota_window w, int64_t now)
{
    switch (w) {
    case QUOTA_WINDOW_DAY:
        return quota_day_start(now);
    case QUOTA_WINDOW_WEEK:
        return quota_week_start(now);
    }
    return quota_day_start(now); /* not reached: -Wswitch covers every window */
}

int64_t quota_window_end(enum quota_window w, int64_t start)
{
    int64_t len = w == QUOTA_WINDOW_WEEK ? QUOTA_WEEK_S : QUOTA_DAY_S;

    /* Only the upper end can overflow; a start below QUOTA_TIME_MIN is a real window start. */
    return (start > QUOTA_TIME_MAX ? QUOTA_TIME_MAX : start) + len;
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

void quota_outcome_settle(struct usage_outcome *o, bool granted, int64_t used)
{
    o->granted = granted;
    o->used = used;
    o->remaining = quota_remaining(o->limit, used);
}
