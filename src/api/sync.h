/*
 * sync.h: `subgate sync`: pulls stored customers' subscriptions and invoices from Stripe, page
 * by page, and repairs the local view through the store's atomic operations, so it is safe to
 * run while the service is serving.
 */
#ifndef SUBGATE_API_SYNC_H
#define SUBGATE_API_SYNC_H

#include <stdio.h>

#include "base/base.h"
#include "base/err.h"

struct store;
struct stripe_client;
struct tier_catalog;

/* What a run did, summed over the customers it saw. */
struct sync_totals {
    int customers;     /* stored customers synced */
    int subscriptions; /* subscriptions read from Stripe */
    int repaired;      /* subscriptions stored because the local view differed or lacked them */
    int invoices;      /* invoices read from Stripe and upserted */
    int failed;        /* customers whose sync stopped on an error */
};

/*
 * Syncs one user's customer (user_id) or, with user_id NULL, every customer that is both at
 * Stripe and in the store. Prints a line per customer ("cus_... user U: N subscription(s),
 * R repaired, K invoice(s)"), one per repaired subscription, and one per failure to out.
 * Errors: ERR_NOT_FOUND when user_id has no stored customer; otherwise the first error met
 * (ERR_UNAVAILABLE, ERR_UPSTREAM, ERR_STORE...), after trying every customer.
 */
MUST_CHECK enum err sync_run(struct store *st, struct stripe_client *sc,
                             const struct tier_catalog *cat, const char *user_id, FILE *out,
                             struct sync_totals *tot);

#endif /* SUBGATE_API_SYNC_H */
