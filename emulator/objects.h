/*
 * objects.h: building the emulator's Stripe objects in Stripe's shapes (API version 2023-08-16;
 * compare ../shared/stripe/fixtures3.2023-08-16.json), and expand[] on answers. Pure except
 * for random ids.
 */
#ifndef SUBGATE_EMULATOR_OBJECTS_H
#define SUBGATE_EMULATOR_OBJECTS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "base/base.h"
#include "state.h"

#define EMU_DAY_S           INT64_C(86400)
#define EMU_TRIAL_WARNING_S (3 * EMU_DAY_S) /* trial_will_end comes this long before trial_end */

/* A new customer from POST /v1/customers parameters (already checked). */
json_t *emu_customer_json(const json_t *params, int64_t now);

/* A new open checkout session; url is its hosted page. */
json_t *emu_session_json(const json_t *params, const char *id, const char *url, int64_t now);

struct emu_sub_params {
    const char *customer;
    const json_t *price; /* the price object (copied) */
    int64_t quantity;
    const json_t *metadata; /* NULL = {} */
    const char *test_clock; /* NULL when none */
    int64_t now;
    int64_t trial_days; /* 0 = no trial */
};

/* A new subscription (active, or trialing when trial_days > 0) with one item. */
json_t *emu_subscription_json(const struct emu_sub_params *p);

/* Sets current_period_start/end at the top level and on every item (both API shapes). */
void emu_subscription_set_period(json_t *sub, int64_t start, int64_t end);

/* Sets the price of the first item (and the legacy plan fields). */
void emu_subscription_set_price(json_t *sub, const json_t *price);

/* The first item's price object (borrowed), or NULL. */
json_t *emu_subscription_price(const json_t *sub);

struct emu_invoice_params {
    const json_t *sub;
    const json_t *customer;
    const char *billing_reason; /* "subscription_create", "subscription_cycle" */
    int64_t amount;             /* minor units; 0 for a trial */
    int64_t period_start, period_end;
    int64_t now;
    const char *public_url; /* base of hosted_invoice_url and invoice_pdf */
    const json_t *lines;    /* the line items (copied); NULL = one line for the subscription */
};

/*
 * A new open (finalized, unpaid) invoice with the given lines, or one line for the
 * subscription; its totals are `amount` until emu_invoice_total sets them.
 */
json_t *emu_invoice_json(const struct emu_invoice_params *p);

struct emu_line_params {
    const json_t *sub;
    const json_t *price;
    int64_t quantity;
    int64_t amount; /* minor units; negative for a credit */
    const char *description;
    int64_t start, end; /* the period the line covers */
    bool proration;
    const char *type; /* "subscription" or "invoiceitem" (prorations) */
};

/* A new invoice line item (the invoice_item id is made up for "invoiceitem" lines). */
json_t *emu_line_json(const struct emu_line_params *p);

#define EMU_TAX_PERCENT 10 /* automatic tax: one fixed exclusive test rate */
#define EMU_TAX_RATE_ID "txr_emulator_auto_10"

struct emu_invoice_terms {
    const json_t *discount; /* the discount object that applies, or NULL */
    int64_t percent_off_bp; /* its coupon's percent_off in basis points (2000 = 20%) */
    bool tax;               /* automatic tax at EMU_TAX_PERCENT, exclusive */
    int64_t balance;        /* the customer's balance before (negative = credit) */
};

/*
 * Sets an invoice's totals from its lines: each line's discount and tax (rounded per line,
 * half away from zero), subtotal, total, tax, the discount and tax summaries, and amount_due
 * after the customer's balance. Returns the customer's balance after (0 or a credit). Pure.
 */
int64_t emu_invoice_total(json_t *inv, const struct emu_invoice_terms *t);

/* num / den rounded to the nearest integer, halves away from zero. */
int64_t emu_round_div(int64_t num, int64_t den);

struct emu_discount_params {
    const char *customer;
    const char *subscription;   /* NULL when none */
    const char *session;        /* the checkout session that applied it, or NULL */
    const char *promotion_code; /* NULL when the coupon was applied directly */
    int64_t now;
};

/* A new discount of coupon (stolen); a repeating coupon ends duration_in_months after now. */
json_t *emu_discount_json(json_t *coupon, const struct emu_discount_params *p);

/* A new active subscription schedule made from_subscription: one phase, the current period. */
json_t *emu_schedule_json(const json_t *sub, int64_t now);

/* One schedule phase with one item. */
json_t *emu_schedule_phase_json(const json_t *price, int64_t quantity, int64_t start, int64_t end);

/* Marks an invoice paid or failed at `now`. */
void emu_invoice_settle(json_t *inv, bool paid, int64_t now);

struct emu_charge_params {
    const json_t *invoice; /* the paid invoice: its amount_paid, currency, customer, id */
    const char *card;      /* the test card number that paid */
    int64_t now;
};

/* A new succeeded PaymentIntent for a paid invoice; the caller sets latest_charge. */
json_t *emu_payment_intent_json(const struct emu_charge_params *p);

/* A new succeeded card charge of a paid invoice, made through the PaymentIntent pi_id. */
json_t *emu_charge_json(const struct emu_charge_params *p, const char *pi_id);

struct emu_refund_params {
    const json_t *charge;
    int64_t amount;         /* minor units, at most what is left of the charge */
    const char *reason;     /* "duplicate", "fraudulent", "requested_by_customer"; NULL = none */
    const json_t *metadata; /* NULL = {} */
    int64_t now;
};

/* A new succeeded refund of (part of) a charge. */
json_t *emu_refund_json(const struct emu_refund_params *p);

/* A new billing portal session. */
json_t *emu_portal_json(const char *customer, const char *return_url, const char *url, int64_t now);

/* A new test clock. */
json_t *emu_clock_json(int64_t frozen_time, const char *name, int64_t now);

/* Adds one calendar month to t (UTC), clamped to the end of a shorter month. */
int64_t emu_add_month(int64_t t);

/* Adds n calendar months to t (UTC), clamped likewise. */
int64_t emu_add_months(int64_t t, int64_t n);

/* Adds one price interval ("day", "week", "month", "year") to t. */
int64_t emu_add_interval(int64_t t, const char *interval);

/* A recurring price's interval ("month" when it has none). */
const char *emu_price_interval(const json_t *price);

/* A deep copy of obj with the expand[] paths (array of strings, may be NULL) expanded. */
json_t *emu_expand(const struct emu_state *st, const json_t *obj, const json_t *expand);

#endif /* SUBGATE_EMULATOR_OBJECTS_H */
