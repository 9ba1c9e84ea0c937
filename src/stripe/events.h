/*
 * events.h: a Stripe webhook event body (the raw bytes Stripe signed) parsed into the effect
 * it has on our records (billing/events.h). Pure: no I/O.
 */
#ifndef SUBGATE_STRIPE_EVENTS_H
#define SUBGATE_STRIPE_EVENTS_H

#include <stddef.h>

#include "base/base.h"
#include "base/err.h"
#include "billing/events.h"
#include "stripe/objects.h"

/*
 * Parses the event <body, len> into *ev: the envelope (id, type, created), the kind from the
 * type table, and for a handled type its data.object (a checkout session, a subscription with
 * stripe_updated = created, or an invoice). tier and the user ids the object does not carry
 * are left "" for the caller to resolve.
 *
 * ERR_INVALID when the envelope is unusable (not JSON, not an object, id, type or created
 * missing or of the wrong type): nothing identifies the event, so it cannot be recorded; and
 * when a time of the event or its object is outside 1970..9999 (refused at the door like a bad
 * signature: nothing is recorded, though ev->id is set).
 * ERR_UPSTREAM when the envelope is fine (ev->id, type and created are set) but the object
 * of a handled type is malformed, or not of the kind its type carries: the event can be
 * recorded as failed. se->message says why in both cases.
 */
MUST_CHECK enum err stripe_event_parse(const char *body, size_t len, struct billing_event *ev,
                                       struct stripe_error *se);

/*
 * The same through jansson's whole tree (stripe_event_parse builds only the members the
 * readers use, stripe/skim.h): for the tests that hold the two to the same answers.
 */
MUST_CHECK enum err stripe_event_parse_full(const char *body, size_t len, struct billing_event *ev,
                                            struct stripe_error *se);

#endif /* SUBGATE_STRIPE_EVENTS_H */
