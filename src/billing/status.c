/* status.c: Stripe's subscription statuses as an enum (see status.h). */
#include "billing/status.h"

#include <string.h>

#include "base/base.h"

static const char *const names[] = {
    [SUB_STATUS_MISSING] = "",
    [SUB_STATUS_UNKNOWN] = "unknown",
    [SUB_STATUS_INCOMPLETE] = "incomplete",
    [SUB_STATUS_INCOMPLETE_EXPIRED] = "incomplete_expired",
    [SUB_STATUS_TRIALING] = "trialing",
    [SUB_STATUS_ACTIVE] = "active",
    [SUB_STATUS_PAST_DUE] = "past_due",
    [SUB_STATUS_CANCELED] = "canceled",
    [SUB_STATUS_UNPAID] = "unpaid",
    [SUB_STATUS_PAUSED] = "paused",
};

enum sub_status sub_status_parse(const char *s)
{
    if (!s || s[0] == '\0')
        return SUB_STATUS_MISSING;
    /* Stripe's names only: "" and "unknown" are ours. */
    for (size_t i = SUB_STATUS_INCOMPLETE; i < ARRAY_SIZE(names); i++)
        if (strcmp(names[i], s) == 0)
            return (enum sub_status)i;
    return SUB_STATUS_UNKNOWN;
}

const char *sub_status_name(enum sub_status st)
{
    return (size_t)st < ARRAY_SIZE(names) && names[st] ? names[st] : names[SUB_STATUS_UNKNOWN];
}

bool sub_status_is_live(enum sub_status st)
{
    switch (st) {
    case SUB_STATUS_TRIALING:
    case SUB_STATUS_ACTIVE:
    case SUB_STATUS_PAST_DUE:
        return true;
    case SUB_STATUS_MISSING:
    case SUB_STATUS_UNKNOWN:
    case SUB_STATUS_INCOMPLETE:
    case SUB_STATUS_INCOMPLETE_EXPIRED:
    case SUB_STATUS_CANCELED:
    case SUB_STATUS_UNPAID:
    case SUB_STATUS_PAUSED:
        break;
    }
    return false;
}
