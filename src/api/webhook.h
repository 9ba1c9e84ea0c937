/*
 * webhook.h: taking in one Stripe event body (SPEC §5): parse, complete from the tier
 * catalogue, record and apply. Shared by the webhook endpoint and `subgate events replay`.
 */
#ifndef SUBGATE_API_WEBHOOK_H
#define SUBGATE_API_WEBHOOK_H

#include <stddef.h>

#include "base/base.h"
#include "base/err.h"
#include "billing/events.h"
#include "store/store.h"
#include "stripe/client.h"

struct tier_catalog;

/* What became of one event body. */
struct webhook_outcome {
    enum store_event_result result; /* meaningful when webhook_ingest returned ERR_OK */
    char id[STRIPE_ID_MAX];         /* "" when the body named none */
    char type[EVENT_TYPE_MAX];
    char message[256];          /* why it failed, safe to show; "" on success */
    char sub_id[STRIPE_ID_MAX]; /* the event's subscription; "" when it carries none */
    bool same_second;           /* its state met a different stored one of the same Stripe
                                   second (store_event_in.same_second): read it from Stripe */
};

/*
 * Parses the event <body, len> (stripe/events.h), sets the tier of its subscription from the
 * price (tier_catalog_find_by_price; "" for a price in no tier), then records and applies it
 * (store_event_record_apply) in mode. Errors, with out->message:
 *   ERR_INVALID   the body is not an event (not JSON, no id/type/created): nothing stored;
 *   ERR_UPSTREAM  the object of a handled type is malformed: recorded as failed;
 *   ERR_NOT_FOUND the subscription's or invoice's user is not known yet: recorded as failed,
 *                 worth retrying once the customer is linked;
 *   ERR_STORE     the database failed: rolled back, recorded as failed when possible.
 * In receive mode an id applied or ignored before is a duplicate whatever this body holds: ERR_OK,
 * nothing recorded.
 */
MUST_CHECK enum err webhook_ingest(struct store *st, const struct tier_catalog *cat,
                                   const char *body, size_t len, enum store_event_mode mode,
                                   struct webhook_outcome *out);

/*
 * Reads subscription id from Stripe and stores that answer (it wins a tie of one second with
 * the stored state), for its stored user. Logs and returns the error when it cannot.
 */
enum err webhook_refresh_subscription(struct store *st, const struct tier_catalog *cat,
                                      struct stripe_client *sc, const char *id);

#endif /* SUBGATE_API_WEBHOOK_H */
