/*
 * order.h: which of two states of one Stripe object is the newer (SPEC §5: an older event never
 * overwrites newer state). Pure: no I/O, no clock. store/ calls it inside its transactions.
 */
#ifndef SUBGATE_BILLING_ORDER_H
#define SUBGATE_BILLING_ORDER_H

#include <stdbool.h>

#include "billing/records.h"

/*
 * True when a is a strictly newer state of the subscription than b. Each state's
 * stripe_updated is the `created` of the event that carried it, or the time it was fetched
 * from Stripe's API. Stripe stamps events in whole seconds and many share one second, so the
 * rule is a lexicographic comparison of keys, first difference wins:
 *   1. a terminal status (canceled, incomplete_expired) beats any other: Stripe never
 *      changes a subscription after it ends;
 *   2. the later current_period_start: periods only move forward (renewals, trial end,
 *      billing cycle resets), and this key does not depend on anyone's clock;
 *   3. the later stripe_updated;
 *   4. within one second, the status further along incomplete < trialing < active <
 *      past_due < unpaid < paused (a payment fails after a renewal, not before);
 *   5. cancel_at_period_end set beats unset (a cancellation is asked after the subscription
 *      exists), then the later canceled_at, then the later cancel_at;
 *   6. a fixed comparison of the remaining fields (period end, trial end, status, price), so
 *      two states that differ only there still converge whatever the order of delivery.
 * Equal states are not newer than each other, so a redelivered state is a no-op.
 */
bool subscription_state_is_newer(const struct subscription *a, const struct subscription *b);

/*
 * What to store when incoming meets stored (NULL: nothing stored yet): incoming when it is
 * newer, else stored. past_due_since is kept right on the way: set to the incoming state's
 * stripe_updated when the status becomes past_due, kept while it stays past_due within one
 * period (lowered when an older past_due state of that period shows up late), cleared
 * otherwise. Writes the result to *out; true when *out differs from *stored and must be saved.
 */
bool subscription_state_merge(const struct subscription *stored,
                              const struct subscription *incoming, struct subscription *out);

/*
 * True when the incoming state of an invoice may replace the stored one: its status is at
 * least as far along draft < open < uncollectible < paid = void. Invoices carry no update
 * time, and their status only moves forward, so a late invoice.payment_failed never reopens
 * a paid invoice.
 */
bool invoice_state_supersedes(const struct invoice *incoming, const struct invoice *stored);

/*
 * True when a is a strictly newer state of the schedule than b: an ended schedule (completed,
 * released, canceled) beats a live one (not_started, active), since Stripe never revives one;
 * then the later stripe_updated; within one second, the state whose next phase differs wins by a
 * fixed comparison (next_at, then next_price_id), so deliveries in any order converge.
 */
bool schedule_state_is_newer(const struct schedule_record *a, const struct schedule_record *b);

/* True when the schedule has ended: completed, released or canceled (or another final state). */
bool schedule_has_ended(const struct schedule_record *s);

#endif /* SUBGATE_BILLING_ORDER_H */
