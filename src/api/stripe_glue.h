/*
 * stripe_glue.h: what the payments handlers and sync share between Stripe's answers and the
 * store: the trial rule, who a checkout session belongs to, how a subscription fetched from
 * Stripe is completed and applied, and how a failed Stripe call is told to the caller.
 */
#ifndef SUBGATE_API_STRIPE_GLUE_H
#define SUBGATE_API_STRIPE_GLUE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "base/err.h"
#include "billing/records.h"
#include "http/request.h"
#include "stripe/client.h"
#include "stripe/objects.h"

struct store;
struct tier_catalog;

#define GLUE_TRIAL_DAYS_MAX 730

/* The trial a checkout gets. */
struct glue_trial {
    int64_t requested;  /* days asked for; 0 when none */
    int64_t granted;    /* days given: requested, or 0 */
    const char *reason; /* static; NULL when granted as asked */
};

/* One trial per user, ever: a user who had one gets none, and reason says so. */
struct glue_trial glue_trial_decide(int64_t requested_days, bool had_trial);

/* True when the session names user_id in client_reference_id or metadata.user_id. */
bool glue_session_belongs_to(const struct stripe_checkout_session *cs, const char *user_id);

/*
 * Completes a subscription as Stripe answered it at fetched_at: tier from its price ("" when
 * the price is in no tier), user_id when given (else the one from metadata stays),
 * stripe_updated = fetched_at, past_due_since kept from stored (may be NULL) while it stays
 * past_due, else fetched_at for a new past_due, else 0.
 */
void glue_subscription_complete(const struct tier_catalog *cat, const char *user_id,
                                int64_t fetched_at, const struct subscription *stored,
                                struct subscription *s);

/* True when a and b differ in a field Stripe owns (not stripe_updated, not past_due_since). */
bool glue_subscription_differs(const struct subscription *a, const struct subscription *b);

/*
 * Completes s (glue_subscription_complete, at Stripe's time stripe_time) and stores it through
 * store_subscription_apply. *changed (may be NULL) is true when it was stored and differs from
 * what was stored before (or nothing was). ERR_UPSTREAM, nothing stored, when its price is in
 * no tier (it would read as no tier and take the user's away); otherwise the store's errors.
 */
MUST_CHECK enum err glue_subscription_store(struct store *st, const struct tier_catalog *cat,
                                            const char *user_id, int64_t stripe_time,
                                            struct subscription *s, bool *changed);

/*
 * True when storing s (completed) over stored (NULL: nothing stored) changes what is stored:
 * nothing was, or s is newer by the ordering rule (billing/order.h) and differs in a field
 * Stripe owns. What sync reports as repaired, and what its dry run reports it would repair.
 */
bool glue_subscription_would_change(const struct subscription *stored,
                                    const struct subscription *s);

/*
 * glue_subscription_store without writing: completes s the same way and sets *changed to
 * whether storing it would change the stored state (glue_subscription_would_change). The same
 * errors: ERR_UPSTREAM for a price no tier names, ERR_CONFLICT when the stored subscription
 * belongs to another user than s, the store's errors.
 */
MUST_CHECK enum err glue_subscription_check(struct store *st, const struct tier_catalog *cat,
                                            const char *user_id, int64_t stripe_time,
                                            struct subscription *s, bool *changed);

/* True when a and b differ in any stored field. */
bool glue_invoice_differs(const struct invoice *a, const struct invoice *b);

/*
 * True when storing inv over stored (NULL: nothing stored) changes what is stored: nothing
 * was, or inv is at least as far along (invoice_state_supersedes) and differs.
 */
bool glue_invoice_would_change(const struct invoice *stored, const struct invoice *inv);

/*
 * Stores inv through store_invoice_apply (an invoice never moves back); *changed tells whether
 * that changed the stored invoice (glue_invoice_would_change). The store's errors.
 */
MUST_CHECK enum err glue_invoice_store(struct store *st, const struct invoice *inv, bool *changed);

/* glue_invoice_store without writing: *changed tells whether it would change the stored one. */
MUST_CHECK enum err glue_invoice_check(struct store *st, const struct invoice *inv, bool *changed);

/*
 * Stripe's time of a state it answered (s, with se of that call): the time of its test clock
 * when it runs on one (the clock its events are dated by; one more call), else the Date of
 * Stripe's answer. Never the server's clock against Stripe's, but for an answer without a Date,
 * when local_now is all there is (logged).
 */
int64_t glue_answer_time(struct stripe_client *sc, const struct subscription *s,
                         const struct stripe_error *se, int64_t local_now);

/*
 * glue_subscription_store for a state Stripe answered (checkout success, cancel, sync): at
 * glue_answer_time, marked answered, so it also wins a tie with an event of the same second.
 */
MUST_CHECK enum err glue_subscription_store_answer(struct store *st, const struct tier_catalog *cat,
                                                   struct stripe_client *sc, const char *user_id,
                                                   const struct stripe_error *se,
                                                   struct subscription *s, bool *changed);

/* glue_subscription_check for a state Stripe answered, at the time glue_*_store_answer uses. */
MUST_CHECK enum err glue_subscription_check_answer(struct store *st, const struct tier_catalog *cat,
                                                   struct stripe_client *sc, const char *user_id,
                                                   const struct stripe_error *se,
                                                   struct subscription *s, bool *changed);

/*
 * The price of the downgrade s's schedule holds (a live schedule naming another price than s's),
 * into next; false with next "" when none.
 */
bool glue_scheduled_price(struct store *st, const struct subscription *s, char next[STRIPE_ID_MAX]);

/*
 * Puts back the downgrade to next_price that was withdrawn (its schedule released) for a change
 * of s that Stripe then refused: a schedule from the subscription, this period as it is, then
 * next_price; stored with s as Stripe then answers it, for s's user. False (logged) when Stripe
 * refuses that too.
 */
bool glue_schedule_restore(struct store *st, const struct tier_catalog *cat,
                           struct stripe_client *sc, const struct subscription *s,
                           const char *next_price);

/*
 * Records a failed Stripe call on req, said plainly for the caller, and returns the error to
 * answer: no answer, 5xx or 429 after the client's retries become 503 stripe_unavailable or
 * 502 stripe_error, and so does a refusal for the object's state (ERR_REFUSED) the caller did
 * not handle; a card refusal 402; an object the caller named (param) that Stripe does
 * not have 404 or 400; an id stored here that Stripe does not know (resource_missing, param
 * NULL) 409 stripe_object_missing, which retrying cannot fix. doing says what was attempted
 * ("create the checkout session").
 */
enum err glue_fail_stripe(struct request *req, enum err err, const struct stripe_error *se,
                          const char *doing, const char *param);

#endif /* SUBGATE_API_STRIPE_GLUE_H */
