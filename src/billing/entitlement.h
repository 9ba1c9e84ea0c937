/*
 * entitlement.h: which tier a subscription grants at a given time (SPEC §4). Pure: the
 * subscription, now and the past_due grace period come in as values.
 */
#ifndef SUBGATE_BILLING_ENTITLEMENT_H
#define SUBGATE_BILLING_ENTITLEMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "billing/records.h"

/* Why a subscription does or does not grant its tier; each has a stable name for APIs. */
enum entitlement_reason {
    ENT_NONE,             /* no subscription */
    ENT_ACTIVE,           /* active */
    ENT_TRIALING,         /* trialing */
    ENT_PAST_DUE_GRACE,   /* past_due, still inside the grace period */
    ENT_ENDING,           /* active, cancels at period end, period not over yet */
    ENT_PAST_DUE_EXPIRED, /* past_due for longer than the grace period */
    ENT_PERIOD_ENDED,     /* cancel_at_period_end or cancel_at reached */
    ENT_INACTIVE,         /* canceled, unpaid, incomplete, incomplete_expired, paused, unknown */
};

struct entitlement {
    bool grants; /* true: the subscription's tier; false: the default tier */
    enum entitlement_reason reason;
    int64_t until; /* when a granting state ends by itself (0 = not known) */
};

/* sub may be NULL (no subscription). grace_s is how long past_due keeps the tier. */
struct entitlement entitlement_of(const struct subscription *sub, int64_t now, int64_t grace_s);

/* True when the grant is in force at now: started, not ended, not revoked. */
bool grant_in_force(const struct grant_record *g, int64_t now);

const char *entitlement_reason_name(enum entitlement_reason r);

#endif /* SUBGATE_BILLING_ENTITLEMENT_H */
