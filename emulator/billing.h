/*
 * billing.h: the emulator's state changes with their events, in Stripe's order: paying and
 * expiring checkout sessions, updating and cancelling subscriptions, charging invoices and
 * refunding charges, and advancing test clocks (trial ends, renewals, failed renewals, scheduled
 * cancellations, session expiry). Every function runs with app->mu held.
 */
#ifndef SUBGATE_EMULATOR_BILLING_H
#define SUBGATE_EMULATOR_BILLING_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "base/base.h"
#include "base/err.h"
#include "emu.h"

enum emu_card {
    EMU_CARD_OK,         /* 4242 4242 4242 4242 (and the customer default) */
    EMU_CARD_DECLINE,    /* 4000 0000 0000 0002 */
    EMU_CARD_3DS,        /* 4000 0025 0000 3155: asks for authentication first (on session) */
    EMU_CARD_3DS_ALWAYS, /* 4000 0027 6000 3184: asks for authentication off session too */
    EMU_CARD_INVALID,    /* anything else */
};

/* Classifies a card number; spaces are ignored. */
enum emu_card emu_card_parse(const char *number);

/* Creates a customer from checked parameters and emits customer.created. Borrowed result. */
json_t *emu_customer_create(struct emu *app, const json_t *params);

/*
 * Pays an open session with a card that passed (OK or authenticated 3DS): creates the customer
 * if needed, the subscription and its first invoice (paid, with its PaymentIntent and charge;
 * 0 and neither for a trial), completes the session and emits the checkout events. `card`
 * becomes the customer's card for renewals. A customer may pay several sessions: each makes a
 * subscription of its own, as at Stripe.
 */
void emu_checkout_pay(struct emu *app, json_t *session, const char *card);

/* Expires an open session at `at`: status expired, url null; emits checkout.session.expired. */
void emu_checkout_expire(struct emu *app, json_t *session, int64_t at);

/* Expires every open session whose expires_at has come on its customer's clock (or the real one).
 */
void emu_checkout_expire_due(struct emu *app);

enum emu_refund_check {
    EMU_REFUND_OK,
    EMU_REFUND_ALREADY_REFUNDED, /* nothing is left of the charge */
    EMU_REFUND_TOO_LARGE,        /* the requested amount is more than what is left */
};

/*
 * What a refund takes from a charge of `amount` of which `refunded` went back already: the
 * requested amount (>= 1) when has_requested, else all that is left; *out is what is left when
 * the refund is refused. Pure.
 */
enum emu_refund_check emu_refund_amount(int64_t amount, int64_t refunded, bool has_requested,
                                        int64_t requested, int64_t *out);

/*
 * Refunds `amount` (checked by emu_refund_amount) of a charge: stores a succeeded refund, adds
 * to the charge's amount_refunded (refunded once nothing is left), emits refund.created then
 * charge.refunded. The refund is borrowed from the state.
 */
json_t *emu_charge_refund(struct emu *app, json_t *charge, int64_t amount, const char *reason,
                          const json_t *metadata);

/*
 * Emits customer.subscription.updated with previous_attributes prev (stolen) when prev is not
 * empty. The apply functions below record what they change into prev, so one update call
 * emits one event.
 */
void emu_subscription_updated(struct emu *app, json_t *sub, json_t *prev);

/* Sets cancel_at_period_end (and cancel_at, canceled_at); old values of changes go into prev. */
void emu_subscription_cancel_at_period_end(struct emu *app, json_t *sub, bool on, json_t *prev);

/* Cancels now: status canceled, ended_at, canceled_at; emits customer.subscription.deleted. */
void emu_subscription_cancel_now(struct emu *app, json_t *sub);

/* Switches the first item to price; old items and plan go into prev when it changed. */
void emu_subscription_switch(json_t *sub, const json_t *price, json_t *prev);

/* Merges a metadata update (Stripe's rules: "" deletes a key, metadata="" clears); old into prev.
 */
void emu_metadata_update(json_t *obj, json_t *update, json_t *prev);

/* What charging a customer's saved card off session does. */
enum emu_pay {
    EMU_PAY_OK,
    EMU_PAY_DECLINED, /* the invoice stays open: invoice.payment_failed */
    EMU_PAY_ACTION,   /* it needs authentication: invoice.payment_action_required */
};

/*
 * The prorated part of `amount` for what is left of [period_start, period_end) at `at`:
 * amount * (period_end - at) / (period_end - period_start), to the second, rounded half away
 * from zero (all of it before the period, nothing after). Pure.
 */
int64_t emu_prorate(int64_t amount, int64_t period_start, int64_t period_end, int64_t at);

/* What charging the customer's saved card off session does now. */
enum emu_pay emu_customer_pay_outcome(struct emu *app, const char *cus_id);

/* How a stored invoice's collection went. */
enum emu_pay emu_invoice_outcome(struct emu *app, const json_t *inv);

/* Emits invoice.created, invoice.finalized and the events of its collection. */
void emu_invoice_events(struct emu *app, const json_t *inv, int64_t at);

/*
 * Pays an open invoice: with `card` on session (the hosted invoice page; authenticated already,
 * so only EMU_CARD_DECLINE fails, and a card that pays becomes the customer's), or with the
 * saved card off session when card is NULL (POST /v1/invoices/{id}/pay). Paid: invoice.paid,
 * invoice.payment_succeeded, and when it is its subscription's latest invoice, the pending
 * update applies and a past_due subscription is active (customer.subscription.updated, then
 * customer.subscription.pending_update_applied). Otherwise invoice.payment_failed or
 * invoice.payment_action_required, and the invoice stays open.
 */
enum emu_pay emu_invoice_pay(struct emu *app, json_t *inv, const char *card);

/*
 * Discards every pending_update whose expires_at has come on its subscription's clock (or the
 * real one): the open invoice is voided (invoice.voided), pending_update becomes null
 * (customer.subscription.updated, customer.subscription.pending_update_expired).
 */
void emu_pending_expire_due(struct emu *app);

/*
 * Pauses a subscription as Stripe does when a trial ends without a payment method: status
 * paused, no invoices until resumed; emits customer.subscription.updated, then
 * customer.subscription.paused.
 */
void emu_subscription_pause(struct emu *app, json_t *sub);

struct emu_resume {
    bool anchor_unchanged;  /* billing_cycle_anchor=unchanged (the default is now) */
    const char *proration;  /* with unchanged: "create_prorations" (NULL too), "always_invoice",
                               "none" */
    int64_t proration_date; /* 0 = now */
};

/*
 * Resumes a paused subscription. billing_cycle_anchor now: a new period starts now and its
 * invoice (with the pending items) is charged to the saved card. unchanged: the period around
 * now, with the rest of it prorated (a pending item, or invoiced now with always_invoice; none
 * charges nothing). Status active, or past_due when the charge fails. Emits
 * customer.subscription.updated, customer.subscription.resumed, then the invoice's events.
 * Returns the invoice made, or NULL.
 */
json_t *emu_subscription_resume(struct emu *app, json_t *sub, const struct emu_resume *r);

struct emu_sub_change {
    const json_t *price;          /* the new price of items[0]; NULL keeps it */
    const char *proration;        /* "create_prorations" (NULL too), "always_invoice", "none" */
    int64_t proration_date;       /* prorate from then; 0 = now */
    bool anchor_now;              /* billing_cycle_anchor=now */
    const char *payment_behavior; /* "pending_if_incomplete" keeps the change pending */
};

/*
 * Changes a subscription's price as Stripe does. Same interval: create_prorations adds the
 * credit for unused time on the old price and the charge for the rest of the period on the new
 * one as pending items of the next invoice; always_invoice invoices them (with the pending
 * items) and charges the saved card now; none just switches. Another interval, or
 * billing_cycle_anchor now, restarts the period now and invoices the new price less the unused
 * time. A failed charge leaves the invoice open and the subscription past_due, or, with
 * pending_if_incomplete, the price unchanged under pending_update. Old values go into prev.
 * Returns the invoice made now (stored; its events not yet emitted) or NULL.
 */
json_t *emu_subscription_change(struct emu *app, json_t *sub, const struct emu_sub_change *ch,
                                json_t *prev);

/*
 * The upcoming invoice (GET /v1/invoices/upcoming): with a change that invoices now, that
 * invoice; otherwise the next period's, with the pending items, the change's prorations and the
 * next schedule phase's price. New, without an id; nothing is stored.
 */
json_t *emu_subscription_preview(struct emu *app, json_t *sub, const struct emu_sub_change *ch);

/* A new schedule from_subscription (one phase: the current period); sub.schedule is set. */
json_t *emu_schedule_create(struct emu *app, json_t *sub);

/* Replaces a schedule's phases (stolen; checked, at least one) and end_behavior (NULL keeps). */
void emu_schedule_set_phases(struct emu *app, json_t *sched, json_t *phases,
                             const char *end_behavior);

/* Releases a schedule: the subscription stays as it is, without a schedule. */
void emu_schedule_release(struct emu *app, json_t *sched);

/* Advances a test clock to frozen_time, processing every due subscription event in time order. */
void emu_clock_advance(struct emu *app, json_t *clock, int64_t frozen_time);

#endif /* SUBGATE_EMULATOR_BILLING_H */
