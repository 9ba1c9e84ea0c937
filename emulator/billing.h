/*
 * billing.h: the emulator's state changes with their events, in Stripe's order: paying a checkout
 * session, updating and cancelling subscriptions, and advancing test clocks (trial ends,
 * renewals, failed renewals, scheduled cancellations). Every function runs with app->mu held.
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
    EMU_CARD_OK,      /* 4242 4242 4242 4242 (and the customer default) */
    EMU_CARD_DECLINE, /* 4000 0000 0000 0002 */
    EMU_CARD_3DS,     /* 4000 0025 0000 3155: asks for authentication first */
    EMU_CARD_INVALID, /* anything else */
};

/* Classifies a card number; spaces are ignored. */
enum emu_card emu_card_parse(const char *number);

/* Creates a customer from checked parameters and emits customer.created. Borrowed result. */
json_t *emu_customer_create(struct emu *app, const json_t *params);

/*
 * Pays an open session with a card that passed (OK or authenticated 3DS): creates the customer
 * if needed, the subscription and its first invoice (paid; 0 for a trial), completes the
 * session and emits the checkout events. `card` becomes the customer's card for renewals.
 */
void emu_checkout_pay(struct emu *app, json_t *session, const char *card);

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

/* Advances a test clock to frozen_time, processing every due subscription event in time order. */
void emu_clock_advance(struct emu *app, json_t *clock, int64_t frozen_time);

#endif /* SUBGATE_EMULATOR_BILLING_H */
