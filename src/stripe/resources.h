/*
 * resources.h: the Stripe operations subgate uses, typed: customers, checkout sessions,
 * subscriptions, invoices, billing portal sessions. Each builds its form, calls the client
 * (client.h: retries, idempotency) and maps the answer (objects.h). se is always filled on
 * failure; ids in paths must be Stripe ids ([A-Za-z0-9_]) or the call is ERR_INVALID.
 */
#ifndef SUBGATE_STRIPE_RESOURCES_H
#define SUBGATE_STRIPE_RESOURCES_H

#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "base/err.h"
#include "billing/records.h"
#include "stripe/client.h"
#include "stripe/objects.h"

struct stripe_customer_params {
    const char *email;   /* NULL or "": not sent */
    const char *name;    /* NULL or "": not sent */
    const char *user_id; /* metadata[user_id]; NULL or "": not sent */
};

struct stripe_checkout_params {
    const char *customer; /* cus_... */
    const char *price;    /* price_..., one line item of quantity 1 */
    const char *success_url;
    const char *cancel_url;
    const char *client_reference_id; /* NULL: not sent */
    const char *user_id;             /* metadata[user_id] of the session and the subscription */
    int64_t trial_period_days;       /* 0: no trial */
    bool allow_promotion_codes;      /* allow_promotion_codes=true: the page takes a code */
    bool automatic_tax; /* Stripe Tax, billing address and tax ID collected, saved on customer */
    const char *locale; /* a Checkout locale or "auto"; NULL or "": not sent */
};

/*
 * POST /v1/customers. idempotency_key NULL means a random one; pass
 * stripe_idempotency_key_for("customer-create", user_id) so concurrent callers make one. Past a
 * failure Stripe saved under the key the call goes on with the key's next link even after a 5xx
 * of its own (repeat_is_harmless): the caller stores one customer per user, the first.
 */
MUST_CHECK enum err stripe_customer_create(struct stripe_client *c,
                                           const struct stripe_customer_params *p,
                                           const char *idempotency_key, struct stripe_customer *out,
                                           struct stripe_error *se);

/* GET /v1/customers/{id}; a deleted customer comes back with out->deleted set. */
MUST_CHECK enum err stripe_customer_retrieve(struct stripe_client *c, const char *id,
                                             struct stripe_customer *out, struct stripe_error *se);

/*
 * GET /v1/customers?email=&limit=&starting_after=: one page. email and starting_after may be
 * NULL; limit is 1-100. Release the page with stripe_customer_page_release.
 */
MUST_CHECK enum err stripe_customer_list(struct stripe_client *c, const char *email,
                                         const char *starting_after, int limit,
                                         struct stripe_customer_page *out, struct stripe_error *se);

/*
 * POST /v1/checkout/sessions in subscription mode. Past a failure Stripe saved under the key the
 * call goes on with the key's next link even after a 5xx of its own (repeat_is_harmless): the
 * caller hands out only the session of the answer, so a second one made unseen is never paid.
 */
MUST_CHECK enum err stripe_checkout_session_create(struct stripe_client *c,
                                                   const struct stripe_checkout_params *p,
                                                   const char *idempotency_key,
                                                   struct stripe_checkout_session *out,
                                                   struct stripe_error *se);

/*
 * GET /v1/checkout/sessions/{id}; with expand_subscription the subscription comes whole into
 * sub_out (may be NULL; its id is "" when the session has none yet).
 */
MUST_CHECK enum err stripe_checkout_session_retrieve(struct stripe_client *c, const char *id,
                                                     bool expand_subscription,
                                                     struct stripe_checkout_session *out,
                                                     struct subscription *sub_out,
                                                     struct stripe_error *se);

/* GET /v1/subscriptions/{id}. */
MUST_CHECK enum err stripe_subscription_retrieve(struct stripe_client *c, const char *id,
                                                 struct subscription *out, struct stripe_error *se);

/*
 * GET /v1/subscriptions?customer=&status=all: one page of the customer's subscriptions,
 * canceled ones included, newest first. starting_after may be NULL; limit is 1-100.
 */
MUST_CHECK enum err stripe_subscription_list(struct stripe_client *c, const char *customer,
                                             const char *starting_after, int limit,
                                             struct stripe_subscription_page *out,
                                             struct stripe_error *se);

/* POST /v1/subscriptions/{id} cancel_at_period_end=true|false. */
MUST_CHECK enum err stripe_subscription_set_cancel_at_period_end(struct stripe_client *c,
                                                                 const char *id, bool cancel,
                                                                 struct subscription *out,
                                                                 struct stripe_error *se);

/* DELETE /v1/subscriptions/{id}: cancels now; out is the canceled subscription. */
MUST_CHECK enum err stripe_subscription_cancel(struct stripe_client *c, const char *id,
                                               struct subscription *out, struct stripe_error *se);

/*
 * POST /v1/checkout/sessions/{id}/expire (a stable idempotency key per session). ERR_REFUSED
 * when Stripe refuses because the session is not open any more (complete or expired).
 */
MUST_CHECK enum err stripe_checkout_session_expire(struct stripe_client *c, const char *id,
                                                   struct stripe_checkout_session *out,
                                                   struct stripe_error *se);

/*
 * POST /v1/refunds charge=&reason=: refunds what is left of the charge. idempotency_key: the
 * caller's stable key, so a retry never refunds twice.
 */
MUST_CHECK enum err stripe_refund_create(struct stripe_client *c, const char *charge,
                                         const char *reason, const char *idempotency_key,
                                         struct stripe_refund *out, struct stripe_error *se);

/* GET /v1/test_helpers/test_clocks/{id}: *frozen_time is the clock's time. */
MUST_CHECK enum err stripe_test_clock_time(struct stripe_client *c, const char *id,
                                           int64_t *frozen_time, struct stripe_error *se);

/* GET /v1/invoices?customer=: one page, newest first. starting_after may be NULL. */
MUST_CHECK enum err stripe_invoice_list(struct stripe_client *c, const char *customer,
                                        const char *starting_after, int limit,
                                        struct stripe_invoice_page *out, struct stripe_error *se);

/* POST /v1/billing_portal/sessions; writes the portal URL into url_out[URL_MAX]. */
MUST_CHECK enum err stripe_billing_portal_session_create(struct stripe_client *c,
                                                         const char *customer,
                                                         const char *return_url, char *url_out,
                                                         struct stripe_error *se);

/*
 * POST /v1/subscriptions/{id}: switches item item_id to price with proration_behavior
 * always_invoice (the proration is invoiced and charged at once) and payment_behavior
 * pending_if_incomplete (when that payment fails or needs authentication the switch waits as
 * the subscription's pending_update). idempotency_key: the caller's stable key.
 */
MUST_CHECK enum err stripe_subscription_change_price(struct stripe_client *c, const char *id,
                                                     const char *item_id, const char *price,
                                                     const char *idempotency_key,
                                                     struct subscription *out,
                                                     struct stripe_error *se);

/* POST /v1/subscription_schedules from_subscription=id: a schedule of its current phase. */
MUST_CHECK enum err stripe_schedule_from_subscription(struct stripe_client *c, const char *id,
                                                      const char *idempotency_key,
                                                      struct schedule_record *out,
                                                      struct stripe_error *se);

/* What a schedule update sets: the running phase as it is, then one phase of next_price. */
struct stripe_schedule_phases {
    const char *price;      /* the running phase's price */
    int64_t start, end;     /* the running phase: its start, and the period end it runs to */
    const char *next_price; /* from end on, without proration; the schedule then releases */
};

/* POST /v1/subscription_schedules/{id}: phases[0..1], end_behavior=release. */
MUST_CHECK enum err stripe_schedule_set_phases(struct stripe_client *c, const char *id,
                                               const struct stripe_schedule_phases *p,
                                               const char *idempotency_key,
                                               struct schedule_record *out,
                                               struct stripe_error *se);

/*
 * POST /v1/subscription_schedules/{id}/release: the subscription stays as it is, without the
 * schedule. ERR_REFUSED when Stripe refuses because the schedule has ended.
 */
MUST_CHECK enum err stripe_schedule_release(struct stripe_client *c, const char *id,
                                            struct schedule_record *out, struct stripe_error *se);

/* GET /v1/invoices/{id}. */
MUST_CHECK enum err stripe_invoice_retrieve(struct stripe_client *c, const char *id,
                                            struct stripe_invoice *out, struct stripe_error *se);

/* What a preview asks: the subscription with item_id switched to price. */
struct stripe_upcoming_params {
    const char *customer, *subscription, *item_id, *price;
    const char *proration_behavior; /* always_invoice: the invoice charged now; none: the next */
};

/* GET /v1/invoices/upcoming with subscription_items[0] and subscription_proration_behavior. */
MUST_CHECK enum err stripe_invoice_upcoming(struct stripe_client *c,
                                            const struct stripe_upcoming_params *p,
                                            struct stripe_upcoming *out, struct stripe_error *se);

#endif /* SUBGATE_STRIPE_RESOURCES_H */
