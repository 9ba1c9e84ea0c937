/*
 * stripe_glue.c: the decisions shared by payments.c and sync.c between Stripe's answers and the
 * store (see stripe_glue.h). The trial rule, the session owner, glue_subscription_complete and the
 * *_differs and *_would_change predicates are pure; the rest reads the store or Stripe, and the
 * *_store functions and glue_fail_stripe write.
 */
#include "api/stripe_glue.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "billing/order.h"
#include "billing/status.h"
#include "billing/tiers.h"
#include "store/store.h"
#include "stripe/resources.h"

struct glue_trial glue_trial_decide(int64_t requested_days, bool had_trial)
{
    struct glue_trial t = { .requested = requested_days, .granted = requested_days };

    if (requested_days <= 0)
        return (struct glue_trial){ 0, 0, NULL };
    if (had_trial) {
        t.granted = 0;
        t.reason = "one trial per customer: this account already had its trial";
    }
    return t;
}

bool glue_session_belongs_to(const struct stripe_checkout_session *cs, const char *user_id)
{
    if (!user_id || !user_id[0])
        return false;
    return strcmp(cs->client_reference_id, user_id) == 0 || strcmp(cs->user_id, user_id) == 0;
}

void glue_subscription_complete(const struct tier_catalog *cat, const char *user_id,
                                int64_t fetched_at, const struct subscription *stored,
                                struct subscription *s)
{
    const struct tier *t = tier_catalog_find_by_price(cat, s->price_id);
    bool past_due = s->status == SUB_STATUS_PAST_DUE;

    (void)str_copy(s->tier, sizeof(s->tier), t ? t->id : ""); /* tier ids fit by construction */
    if (user_id && user_id[0])
        (void)str_copy(s->user_id, sizeof(s->user_id), user_id); /* both are USER_ID_MAX */
    s->stripe_updated = fetched_at;
    s->past_due_since = 0;
    if (past_due && stored && stored->status == SUB_STATUS_PAST_DUE && stored->past_due_since)
        s->past_due_since = stored->past_due_since; /* the grace clock runs from the first sight */
    else if (past_due)
        s->past_due_since = fetched_at;
}

bool glue_subscription_differs(const struct subscription *a, const struct subscription *b)
{
    return strcmp(a->id, b->id) != 0 || strcmp(a->user_id, b->user_id) != 0 ||
           strcmp(a->stripe_customer_id, b->stripe_customer_id) != 0 ||
           strcmp(a->tier, b->tier) != 0 || strcmp(a->price_id, b->price_id) != 0 ||
           a->status != b->status || a->current_period_start != b->current_period_start ||
           a->current_period_end != b->current_period_end ||
           a->cancel_at_period_end != b->cancel_at_period_end || a->cancel_at != b->cancel_at ||
           a->canceled_at != b->canceled_at || a->trial_end != b->trial_end;
}

bool glue_subscription_would_change(const struct subscription *stored, const struct subscription *s)
{
    return !stored ||
           (subscription_state_is_newer(s, stored) && glue_subscription_differs(stored, s));
}

/*
 * What storing and checking share: reads the stored state of s (*found tells whether there is
 * one), completes s at stripe_time and refuses a price no tier names or a status it does not
 * know.
 */
static enum err subscription_prepare(struct store *st, const struct tier_catalog *cat,
                                     const char *user_id, int64_t stripe_time,
                                     struct subscription *s, struct subscription *stored,
                                     bool *found)
{
    enum err err = store_subscription_get(st, s->id, stored);

    *found = err == ERR_OK;
    if (err && err != ERR_NOT_FOUND)
        return err;
    glue_subscription_complete(cat, user_id, stripe_time, *found ? stored : NULL, s);
    if (s->status == SUB_STATUS_UNKNOWN) {
        log_error("subscription '%s' has a status subgate does not know: not applied", s->id);
        return ERR_UPSTREAM;
    }
    if (!s->tier[0]) {
        log_error("subscription '%s' has price '%s', which no tier names: not applied; configure "
                  "it (STRIPE_*_PRICE_ID or TIERS_FILE)",
                  s->id, s->price_id);
        return ERR_UPSTREAM;
    }
    return ERR_OK;
}

enum err glue_subscription_store(struct store *st, const struct tier_catalog *cat,
                                 const char *user_id, int64_t stripe_time, struct subscription *s,
                                 bool *changed)
{
    struct subscription stored;
    bool found = false, applied = false;
    enum err err = subscription_prepare(st, cat, user_id, stripe_time, s, &stored, &found);

    if (changed)
        *changed = false;
    if (err)
        return err;
    err = store_subscription_apply(st, s, &applied);
    if (changed)
        *changed = !err && applied && glue_subscription_would_change(found ? &stored : NULL, s);
    return err;
}

enum err glue_subscription_check(struct store *st, const struct tier_catalog *cat,
                                 const char *user_id, int64_t stripe_time, struct subscription *s,
                                 bool *changed)
{
    struct subscription stored;
    bool found = false;
    enum err err = subscription_prepare(st, cat, user_id, stripe_time, s, &stored, &found);

    *changed = false;
    if (err)
        return err;
    if (found && strcmp(stored.user_id, s->user_id) != 0)
        return ERR_CONFLICT; /* as store_subscription_apply: a subscription never changes hands */
    *changed = glue_subscription_would_change(found ? &stored : NULL, s);
    return ERR_OK;
}

bool glue_invoice_differs(const struct invoice *a, const struct invoice *b)
{
    return strcmp(a->id, b->id) != 0 || strcmp(a->user_id, b->user_id) != 0 ||
           strcmp(a->subscription_id, b->subscription_id) != 0 ||
           strcmp(a->number, b->number) != 0 || strcmp(a->status, b->status) != 0 ||
           a->amount_due != b->amount_due || a->amount_paid != b->amount_paid ||
           strcmp(a->currency, b->currency) != 0 || a->created != b->created ||
           a->period_start != b->period_start || a->period_end != b->period_end ||
           strcmp(a->hosted_invoice_url, b->hosted_invoice_url) != 0 ||
           strcmp(a->invoice_pdf, b->invoice_pdf) != 0;
}

bool glue_invoice_would_change(const struct invoice *stored, const struct invoice *inv)
{
    return !stored || (invoice_state_supersedes(inv, stored) && glue_invoice_differs(stored, inv));
}

/* The stored invoice of inv's id, when there is one: *found. */
static enum err invoice_stored(struct store *st, const struct invoice *inv, struct invoice *stored,
                               bool *found)
{
    enum err err = store_invoice_get(st, inv->id, stored);

    *found = err == ERR_OK;
    return err == ERR_NOT_FOUND ? ERR_OK : err;
}

enum err glue_invoice_store(struct store *st, const struct invoice *inv, bool *changed)
{
    struct invoice stored;
    bool found = false, applied = false;
    enum err err = invoice_stored(st, inv, &stored, &found);

    if (!err)
        err = store_invoice_apply(st, inv, &applied);
    *changed = !err && applied && glue_invoice_would_change(found ? &stored : NULL, inv);
    return err;
}

enum err glue_invoice_check(struct store *st, const struct invoice *inv, bool *changed)
{
    struct invoice stored;
    bool found = false;
    enum err err = invoice_stored(st, inv, &stored, &found);

    *changed = !err && glue_invoice_would_change(found ? &stored : NULL, inv);
    return err;
}

int64_t glue_answer_time(struct stripe_client *sc, const struct subscription *s,
                         const struct stripe_error *se, int64_t local_now)
{
    struct stripe_error clock_se;
    int64_t frozen = 0;

    if (s->test_clock[0] && stripe_test_clock_time(sc, s->test_clock, &frozen, &clock_se) == ERR_OK)
        return frozen;
    if (s->test_clock[0])
        log_warn("cannot read test clock '%s' of subscription '%s': %s; ordering by the answer's "
                 "Date",
                 s->test_clock, s->id, clock_se.message);
    if (se->answered_at > 0)
        return se->answered_at;
    log_warn("stripe's answer for subscription '%s' had no Date header: ordered by this "
             "server's clock",
             s->id);
    return local_now;
}

enum err glue_subscription_store_answer(struct store *st, const struct tier_catalog *cat,
                                        struct stripe_client *sc, const char *user_id,
                                        const struct stripe_error *se, struct subscription *s,
                                        bool *changed)
{
    s->answered = true;
    return glue_subscription_store(st, cat, user_id, glue_answer_time(sc, s, se, clock_now()), s,
                                   changed);
}

enum err glue_subscription_check_answer(struct store *st, const struct tier_catalog *cat,
                                        struct stripe_client *sc, const char *user_id,
                                        const struct stripe_error *se, struct subscription *s,
                                        bool *changed)
{
    s->answered = true;
    return glue_subscription_check(st, cat, user_id, glue_answer_time(sc, s, se, clock_now()), s,
                                   changed);
}

bool glue_scheduled_price(struct store *st, const struct subscription *s, char next[STRIPE_ID_MAX])
{
    struct schedule_record sched;

    next[0] = '\0';
    if (!s->schedule_id[0] || store_schedule_get(st, s->schedule_id, &sched) != ERR_OK ||
        schedule_has_ended(&sched) || !sched.next_price_id[0] ||
        strcmp(sched.next_price_id, s->price_id) == 0)
        return false;
    return str_copy(next, STRIPE_ID_MAX, sched.next_price_id);
}

bool glue_schedule_restore(struct store *st, const struct tier_catalog *cat,
                           struct stripe_client *sc, const struct subscription *s,
                           const char *next_price)
{
    struct stripe_schedule_phases ph = { s->price_id, s->current_period_start,
                                         s->current_period_end, next_price };
    struct schedule_record sched = { 0 };
    struct subscription now;
    struct stripe_error se;
    bool applied = false;
    enum err err = stripe_schedule_from_subscription(sc, s->id, NULL, &sched, &se);

    if (!err)
        err = stripe_schedule_set_phases(sc, sched.id, &ph, NULL, &sched, &se);
    if (err) {
        log_error("cannot put back the change of subscription '%s' to '%s', withdrawn for a "
                  "change that failed: %s",
                  s->id, next_price, se.message);
        return false;
    }
    sched.stripe_updated = glue_answer_time(sc, s, &se, clock_now());
    if (store_schedule_apply(st, &sched, &applied) != ERR_OK)
        log_error("cannot store subscription schedule '%s': storage_error", sched.id);
    if (stripe_subscription_retrieve(sc, s->id, &now, &se) != ERR_OK ||
        glue_subscription_store_answer(st, cat, sc, s->user_id, &se, &now, NULL) != ERR_OK)
        log_warn("cannot store subscription '%s' with its schedule '%s' put back", s->id, sched.id);
    log_info("the change of subscription '%s' to '%s' was put back (schedule '%s')", s->id,
             next_price, sched.id);
    return true;
}

/* The answer for a failure of Stripe itself, after the client's retries. */
static enum err stripe_down(struct request *req, enum err err, const struct stripe_error *se,
                            const char *doing)
{
    bool no_answer = err == ERR_UNAVAILABLE || err == ERR_RATE_LIMITED;
    char what[64];

    if (se->http_status)
        snprintf(what, sizeof(what), "stripe answered HTTP %d", se->http_status);
    else
        snprintf(what, sizeof(what), "stripe did not answer");
    return request_fail(req, no_answer ? ERR_UNAVAILABLE : ERR_UPSTREAM,
                        no_answer ? "stripe_unavailable" : "stripe_error", NULL,
                        "cannot %s: %s after %d attempt(s) (%s); nothing was changed, try again "
                        "later",
                        doing, what, se->attempts, se->message[0] ? se->message : "no detail");
}

/*
 * Stripe does not know an id this service stored for the user: the database and the Stripe
 * account no longer match (another STRIPE_SECRET_KEY, or the emulator's state file lost), so
 * retrying cannot help. Stripe's message names the object ("No such customer: 'cus_...'").
 */
static enum err stripe_object_missing(struct request *req, const struct stripe_error *se,
                                      const char *doing)
{
    return request_fail(req, ERR_CONFLICT, "stripe_object_missing", NULL,
                        "cannot %s: stripe does not know an object stored for this account (%s): "
                        "the database and the Stripe account no longer match (another "
                        "STRIPE_SECRET_KEY, or the Stripe emulator's state file was lost); "
                        "retrying will not help: use the Stripe account this database was made "
                        "with, or start the database afresh",
                        doing, se->message[0] ? se->message : "no such object");
}

/* The answer to a failed Stripe call: what the caller did wrong (4xx) or Stripe's fault (5xx). */
static enum err stripe_answer(struct request *req, enum err err, const struct stripe_error *se,
                              const char *doing, const char *param)
{
    if (!param && strcmp(se->code, "resource_missing") == 0)
        return stripe_object_missing(req, se, doing);
    switch (err) {
    case ERR_INVALID:
        return request_fail(req, err, "parameter_invalid", param, "cannot %s: %s", doing,
                            se->message);
    case ERR_NOT_FOUND:
        return request_fail(req, err, "resource_missing", param,
                            "cannot %s: stripe has no such "
                            "object",
                            doing);
    case ERR_QUOTA:
        return request_fail(req, err, se->code[0] ? se->code : "card_declined", NULL,
                            "cannot %s: %s", doing, se->message);
    case ERR_REFUSED: /* a refusal the caller did not expect: told as Stripe's failure, 502 */
    default:
        return stripe_down(req, err, se, doing);
    }
}

enum err glue_fail_stripe(struct request *req, enum err err, const struct stripe_error *se,
                          const char *doing, const char *param)
{
    enum err e = stripe_answer(req, err, se, doing, param);
    enum log_level lvl = e == ERR_UPSTREAM || e == ERR_UNAVAILABLE ? LOG_ERROR : LOG_WARN;

    LOG_AT(lvl, "stripe: cannot %s (request %s): HTTP %d %s %s: %s (answered '%s')", doing, req->id,
           se->http_status, se->type, se->code, se->message, req->error.code);
    return e;
}
