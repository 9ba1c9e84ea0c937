/* entitlement.c: effective tier from Stripe's subscription status and the clock. */
#include "billing/entitlement.h"

#include "base/base.h"
#include "billing/status.h"

static const char *const reason_names[] = {
    [ENT_NONE] = "none",
    [ENT_ACTIVE] = "active",
    [ENT_TRIALING] = "trialing",
    [ENT_PAST_DUE_GRACE] = "past_due_grace",
    [ENT_ENDING] = "canceling_at_period_end",
    [ENT_PAST_DUE_EXPIRED] = "past_due_grace_expired",
    [ENT_PERIOD_ENDED] = "period_ended",
    [ENT_INACTIVE] = "inactive",
};

const char *entitlement_reason_name(enum entitlement_reason r)
{
    return (size_t)r < ARRAY_SIZE(reason_names) ? reason_names[r] : "unknown";
}

static struct entitlement ent(bool grants, enum entitlement_reason r, int64_t until)
{
    struct entitlement e = { grants, r, until };

    return e;
}

/* The moment a scheduled cancellation takes effect, 0 when none is scheduled. */
static int64_t scheduled_end(const struct subscription *s)
{
    int64_t end = 0;

    if (s->cancel_at_period_end)
        end = s->current_period_end;
    if (s->cancel_at > 0 && (end == 0 || s->cancel_at < end))
        end = s->cancel_at;
    return end;
}

/* a + b, held to INT64_MIN..INT64_MAX instead of overflowing (times from a database or a config).
 */
static int64_t add_saturated(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

static struct entitlement past_due(const struct subscription *s, int64_t now, int64_t grace_s)
{
    /* Stripe fails a renewal at the start of the new period when no event told us earlier. */
    int64_t since = s->past_due_since ? s->past_due_since : s->current_period_start;
    /*
     * Stripe's time is the subscription's (a test clock's may run ahead of ours): a grace that
     * would start after now has started now, so no grace means none, whatever the clocks say.
     */
    int64_t until = add_saturated(since < now ? since : now, grace_s);

    if (now < until)
        return ent(true, ENT_PAST_DUE_GRACE, until);
    return ent(false, ENT_PAST_DUE_EXPIRED, 0);
}

struct entitlement entitlement_of(const struct subscription *sub, int64_t now, int64_t grace_s)
{
    int64_t end;

    if (!sub)
        return ent(false, ENT_NONE, 0);
    if (!sub_status_is_live(sub->status))
        return ent(false, ENT_INACTIVE, 0);
    end = scheduled_end(sub);
    if (end > 0 && now >= end)
        return ent(false, ENT_PERIOD_ENDED, 0);
    if (sub->status == SUB_STATUS_PAST_DUE) {
        struct entitlement e = past_due(sub, now, grace_s);
        if (e.grants && end > 0 && end < e.until)
            e.until = end;
        return e;
    }
    if (end > 0)
        return ent(true, ENT_ENDING, end);
    return sub->status == SUB_STATUS_TRIALING ? ent(true, ENT_TRIALING, 0)
                                              : ent(true, ENT_ACTIVE, 0);
}

bool grant_in_force(const struct grant_record *g, int64_t now)
{
    return !g->revoked_at && g->starts_at <= now && (!g->ends_at || g->ends_at > now);
}
