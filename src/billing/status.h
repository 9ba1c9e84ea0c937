/*
 * status.h: a subscription's status, parsed once from Stripe's strings, and the one definition
 * of a live subscription (SPEC section 4). Part of billing/: pure.
 */
#ifndef SUBGATE_BILLING_STATUS_H
#define SUBGATE_BILLING_STATUS_H

#include <stdbool.h>

/* Stripe's subscription statuses (API 2023-08-16), and one for a string this build does not know.
 */
enum sub_status {
    SUB_STATUS_UNKNOWN = 0,
    SUB_STATUS_INCOMPLETE,
    SUB_STATUS_INCOMPLETE_EXPIRED,
    SUB_STATUS_TRIALING,
    SUB_STATUS_ACTIVE,
    SUB_STATUS_PAST_DUE,
    SUB_STATUS_CANCELED,
    SUB_STATUS_UNPAID,
    SUB_STATUS_PAUSED,
};

/* The status Stripe names s; SUB_STATUS_UNKNOWN for NULL or any other string. */
enum sub_status sub_status_parse(const char *s);

/* Stripe's name of st ("active", ...); "unknown" for SUB_STATUS_UNKNOWN. */
const char *sub_status_name(enum sub_status st);

/* Live: the subscription is someone's current plan (active, trialing or past_due). */
bool sub_status_is_live(enum sub_status st);

#endif /* SUBGATE_BILLING_STATUS_H */
