/*
 * quota.h: quota windows (UTC day, ISO week starting Monday 00:00 UTC, UTC calendar month, the
 * subscription's billing period) as pure functions of now. Part of billing/: no clock reads and
 * no time zone (integer calendar arithmetic only); the caller passes now and the period.
 */
#ifndef SUBGATE_BILLING_QUOTA_H
#define SUBGATE_BILLING_QUOTA_H

#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "base/err.h"
#include "billing/records.h"

#define QUOTA_DAY_S  INT64_C(86400)
#define QUOTA_WEEK_S (7 * QUOTA_DAY_S)

/*
 * The times the window functions accept (about +-36 billion years): a time outside is clamped to
 * the nearest bound first, so no input overflows.
 */
#define QUOTA_TIME_MAX (INT64_C(1) << 60)
#define QUOTA_TIME_MIN (-QUOTA_TIME_MAX)

/* The period a quota counts over. */
enum quota_window {
    QUOTA_WINDOW_DAY,   /* the UTC day: 00:00:00 to 23:59:59 UTC */
    QUOTA_WINDOW_WEEK,  /* the ISO week: Monday 00:00 UTC to Sunday 23:59:59 UTC */
    QUOTA_WINDOW_MONTH, /* the UTC calendar month: the 1st 00:00 UTC to the next 1st */
    /* the live subscription's current period [start, end), reset at each renewal; the UTC
     * calendar month for a user without one */
    QUOTA_WINDOW_BILLING_PERIOD,
};

/* A subscription's current period [start, end) in Unix seconds; none when either is 0 (unset)
 * or end <= start. */
struct quota_period {
    int64_t start;
    int64_t end;
};

/* The window holding a time: the key usage is counted under, and when it resets. */
struct quota_span {
    int64_t start;
    int64_t end;               /* exclusive: the next window's start */
    enum quota_window counted; /* the window's kind, or QUOTA_WINDOW_MONTH when a billing period
                                  quota has no period to follow */
};

/* Returns the start (UTC midnight) of the day holding now; exact for times before 1970 too. */
int64_t quota_day_start(int64_t now);

/* Returns the start (Monday 00:00 UTC) of the ISO week holding now. */
int64_t quota_week_start(int64_t now);

/* Returns the start (the 1st, 00:00 UTC) of the UTC calendar month holding now. */
int64_t quota_month_start(int64_t now);

/* Returns the start of the UTC calendar month after the one holding t. */
int64_t quota_month_end(int64_t t);

/*
 * Returns the start of the calendar window of kind w holding now: the key its usage is counted
 * under. QUOTA_WINDOW_BILLING_PERIOD counts as its fallback, the month; see quota_span_of.
 */
int64_t quota_window_start(enum quota_window w, int64_t now);

/* Returns the end (exclusive: the next window's start) of the calendar window of kind w that
 * begins at start. */
int64_t quota_window_end(enum quota_window w, int64_t start);

/*
 * Returns the window of kind w holding now. For QUOTA_WINDOW_BILLING_PERIOD with a period p
 * (end > start), the period while now < end (one starting after now too: Stripe's clock, or a
 * test clock, is ahead of ours); from its end on, the period's length repeated from there (a
 * renewal not yet recorded starts at the old end, as Stripe's does); without one,
 * the UTC calendar month, with counted set to QUOTA_WINDOW_MONTH. p is ignored by other windows.
 */
struct quota_span quota_span_of(enum quota_window w, struct quota_period p, int64_t now);

/* Returns the window's name in TIERS_FILE and JSON: "day", "week", "month" or "billing_period". */
const char *quota_window_name(enum quota_window w);

/* Sets *out from a name of quota_window_name(); ERR_INVALID for any other string. */
MUST_CHECK enum err quota_window_parse(const char *name, enum quota_window *out);

/* What is left of limit after used units: never negative; -1 when limit < 0 (unlimited). */
int64_t quota_remaining(int64_t limit, int64_t used);

/*
 * A window's allowance with extra units granted for it (issue #15): limit + extra, saturating
 * at INT64_MAX; extra below 0 counts as none; limit itself when limit < 0 (unlimited).
 */
int64_t quota_allowance(int64_t limit, int64_t extra);

/*
 * What is left with extra units granted for the window and a balance (issue #15): the window's
 * allowance (limit + extra) not yet used, plus the balance; -1 when unlimited. Saturates.
 */
int64_t quota_remaining_extra(int64_t limit, int64_t extra, int64_t balance, int64_t used);

/* Completes an outcome whose limit is set with the decision: granted, used and remaining. */
void quota_outcome_settle(struct usage_outcome *o, bool granted, int64_t used);

#endif /* SUBGATE_BILLING_QUOTA_H */
