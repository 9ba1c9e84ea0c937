/*
 * checkout.h: the checkout sessions of POST /create-checkout-session, at most one open per user
 * (see checkout.c).
 */
#ifndef SUBGATE_API_CHECKOUT_H
#define SUBGATE_API_CHECKOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "billing/records.h"
#include "http/request.h"
#include "stripe/client.h"

/* What the user asks to buy, and the configuration's checkout options; strings borrowed. */
struct checkout_ask {
    const char *price_id;
    const char *success_url;
    const char *cancel_url;
    int64_t trial_days;   /* asked for; 0 when none */
    bool promotion_codes; /* CHECKOUT_PROMOTION_CODES */
    bool automatic_tax;   /* CHECKOUT_AUTOMATIC_TAX */
    const char *locale;   /* CHECKOUT_LOCALE, NULL: not sent */
};

/*
 * Answers {session_id, url[, trial]} with the user's open session for this ask (options
 * included: a session made under other options is not handed back), or a new one:
 * another open session is expired at Stripe first (409 when it was paid meanwhile), the trial
 * goes to one session only, and concurrent requests with the same ask share one session.
 */
MUST_CHECK enum err checkout_session_open(struct request *req, struct stripe_client *sc,
                                          const struct checkout_ask *ask, const struct customer *c,
                                          struct response *resp);

#endif /* SUBGATE_API_CHECKOUT_H */
