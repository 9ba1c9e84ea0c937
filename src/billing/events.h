/*
 * events.h: a Stripe webhook event reduced to its effect on our records, and the table of the
 * event types subgate handles (SPEC §5). Pure; stripe/events.c fills a billing_event from the
 * JSON, store/ applies it.
 */
#ifndef SUBGATE_BILLING_EVENTS_H
#define SUBGATE_BILLING_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "billing/records.h"

#define EVENT_TYPE_MAX 128

/* What an event does to our records. */
enum billing_event_kind {
    EVENT_IGNORED,          /* a type we do not handle: recorded, nothing applied */
    EVENT_CHECKOUT,         /* checkout.session.completed: links the user and the customer */
    EVENT_SUBSCRIPTION,     /* customer.subscription.*: a new state of the subscription */
    EVENT_INVOICE,          /* invoice.paid, invoice.payment_failed: a new state of the invoice */
    EVENT_CHECKOUT_EXPIRED, /* checkout.session.expired: the session can no longer be paid */
    EVENT_SCHEDULE,         /* subscription_schedule.*: a plan change waiting for its date */
};

struct billing_event {
    char id[STRIPE_ID_MAX];    /* evt_... */
    char type[EVENT_TYPE_MAX]; /* "customer.subscription.updated", ... */
    int64_t created;           /* Stripe's event `created` */
    enum billing_event_kind kind;
    char customer_id[STRIPE_ID_MAX]; /* the Stripe customer; "" when the object names none */
    char user_id[USER_ID_MAX];       /* checkout: client_reference_id or metadata.user_id */
    bool has_sub;                    /* sub holds a state (subscription events; an expanded
                                        checkout session's subscription) */
    struct subscription sub;         /* stripe_updated = created; user_id "" when the object has no
                                        metadata.user_id (resolved through the customer) */
    struct invoice invoice;          /* EVENT_INVOICE; user_id "" (resolved through the customer) */
    struct schedule_record schedule; /* EVENT_SCHEDULE, stripe_updated = created */
    char session_subscription[STRIPE_ID_MAX]; /* checkout: the session's subscription id */
    char session_id[STRIPE_ID_MAX];           /* checkout: the session (cs_...) */
};

/* The kind of a Stripe event type; EVENT_IGNORED for the types subgate does not handle. */
enum billing_event_kind billing_event_kind_of(const char *type);

/*
 * The name of the first time of ev (created, the subscription's, the invoice's) outside
 * 0..BILLING_TIME_MAX; NULL when all are in range.
 */
const char *billing_event_time_out_of_range(const struct billing_event *ev);

/* Same, for a subscription state on its own (a direct answer from Stripe). */
const char *billing_subscription_time_out_of_range(const struct subscription *s);

/* True when the subscription state holds a trial (trialing, or a trial_end set). */
bool billing_subscription_has_trial(const struct subscription *s);

#endif /* SUBGATE_BILLING_EVENTS_H */
