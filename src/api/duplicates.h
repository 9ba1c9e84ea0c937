/*
 * duplicates.h: a user's second live subscription, found anyway (paid in two tabs before the
 * first session's expiry landed, or made outside subgate), is canceled at Stripe at once and
 * what it charged refunded (issue #10). The store records each one when it is applied.
 */
#ifndef SUBGATE_API_DUPLICATES_H
#define SUBGATE_API_DUPLICATES_H

#include "billing/tiers.h"
#include "store/store.h"
#include "stripe/client.h"

/*
 * Resolves up to max pending duplicates: cancels each at Stripe (its canceled state stored),
 * refunds every paid charge of its invoices (reason "duplicate", a stable idempotency key per
 * charge, so a retry never refunds twice), and records it resolved with the amount. A failure
 * leaves it pending, with the error, for the next call (the next webhook, checkout or sync).
 * Returns how many were resolved.
 */
int duplicates_resolve(struct store *st, struct stripe_client *sc, const struct tier_catalog *cat,
                       int max);

/*
 * Whether a duplicate waits to be resolved (store_duplicate_pending_any: a read at most once a
 * second while none is; no Stripe); false when it cannot tell.
 */
bool duplicates_pending(struct store *st);

#endif /* SUBGATE_API_DUPLICATES_H */
