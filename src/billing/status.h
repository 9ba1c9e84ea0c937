/*
 * status.h: a subscription's status, parsed once from Stripe's strings, and the one definition
 * of a live subscription (SPEC section 4). Part of billing/: pure.
 */
#ifndef SUBGATE_BILLING_STATUS_H
#define SUBGATE_BILLING_STATUS_H

#include <stdbool.h>

/*
 * Stripe's subscription statuses (API 2023-08-16), and two that are not Stripe's: MISSING,
 * the zero value, for an object that carried no status (the store refuses it where a status
 * is required, as it refused an empty string), and UNKNOWN for a string this build does not
 * know (kept and stored, never live).
 */
enum sub_status {
    SUB_STATUS_MISSING = 0,
    SUB_STATUS_UNKNOWN,
    SUB_STATUS_INCOMPLETE,
    SUB_STATUS_INCOMPLETE_EXPIRED,
    SUB_STATUS_TRIALING,
    SUB_STATUS_ACTIVE,
    SUB_STATUS_PAST_DUE,
    SUB_STATUS_CANCELED,
    SUB_STATUS_UNPAID,
    SUB_STATUS_PAUSED,
};

/*
 * The status Stripe names s: SUB_STATUS_MISSING for NULL or "", SUB_STATUS_UNKNOWN for any
 * other string that is not one of Stripe's names. sub_status_parse(sub_status_name(st)) == st.
 */
enum sub_status sub_status_parse(const char *s);

/*
 * Stripe's name of st ("active", ...): static, never NULL. "" for SUB_STATUS_MISSING and
 * "unknown" for SUB_STATUS_UNKNOWN (or a value outside the enum).
 */
const char *sub_status_name(enum sub_status st);

/* Live: the subscription is someone's current plan (active, trialing or past_due). */
bool sub_status_is_live(enum sub_status st);

#endif /* SUBGATE_BILLING_STATUS_H */
