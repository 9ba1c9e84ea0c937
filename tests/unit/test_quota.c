/* test_quota.c: quota windows; expected values computed with GNU `date -u`, not with our code. */
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

static const struct {
    const char *name;
    enum err want;
    enum quota_window window;
} names[] = {
    { "day", ERR_OK, QUOTA_WINDOW_DAY },        { "week", ERR_OK, QUOTA_WINDOW_WEEK },
    { "Week", ERR_INVALID, QUOTA_WINDOW_DAY },  { "", ERR_INVALID, QUOTA_WINDOW_DAY },
    { "month", ERR_INVALID, QUOTA_WINDOW_DAY },
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
    test_names();
    return t_done();
}
