/*
 * checkout.c: POST /create-checkout-session's sessions (issue #10: nobody pays twice). A user
 * has at most one open checkout session: the same ask (tier, URLs, trial, and the CHECKOUT_*
 * options of the configuration) gets the open one back, another ask expires it at Stripe first;
 * the session is made with an idempotency key derived from the user, the ask and the user's
 * newest session, so concurrent requests (tabs, double clicks, instances) asking the same get
 * one session; the one trial is reserved for one session before it is made.
 */
#include "api/checkout.h"

#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "api/handlers.h"
#include "api/stripe_glue.h"
#include "base/clock.h"
#include "base/hmac.h"
#include "base/log.h"
#include "base/str.h"
#include "store/store.h"
#include "stripe/resources.h"

#define SESSION_TTL_S   INT64_C(86400) /* Stripe's default expires_at: 24 hours */
#define CHECKOUT_ROUNDS 2              /* a race lost to another ask is retried once */

/*
 * What the user asked, with the checkout options it is made under, as a digest: the same ask
 * gets the same session; after a change of CHECKOUT_* the open session is not handed back.
 */
static enum err ask_digest(const struct checkout_ask *ask, char hex[HMAC_SHA256_HEX_LEN + 1])
{
    char days[24], options[64];
    const char *parts[] = { ask->price_id, ask->success_url, ask->cancel_url, days, options };
    struct hmac_part p[2 * ARRAY_SIZE(parts)];

    snprintf(days, sizeof(days), "%lld", (long long)ask->trial_days);
    snprintf(options, sizeof(options), "promotion_codes=%d automatic_tax=%d locale=%s",
             ask->promotion_codes, ask->automatic_tax, ask->locale ? ask->locale : "");
    for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
        p[2 * i] = (struct hmac_part){ parts[i], strlen(parts[i]) };
        p[2 * i + 1] = (struct hmac_part){ "", 1 }; /* NUL between parts */
    }
    return hmac_sha256_hex("subgate checkout", strlen("subgate checkout"), p, ARRAY_SIZE(p), hex);
}

/*
 * The key of this ask after the user's newest session (after_id, or "") in this round: the
 * same for every request asking the same at the same moment, so they share one session; it
 * holds the trial. A round after a lost race has a key of its own.
 */
static void ask_key(const char *user, const char *digest, const char *after_id, int round,
                    char key[STRIPE_IDEMPOTENCY_KEY_MAX])
{
    char subject[USER_ID_MAX + HMAC_SHA256_HEX_LEN + STRIPE_ID_MAX + 16];

    snprintf(subject, sizeof(subject), "%s\n%s\n%s\n%d", user, digest, after_id, round);
    stripe_idempotency_key_for("checkout-ask", subject, key);
}

/*
 * The Idempotency-Key sent to Stripe: the ask's key and the trial the session carries, so two
 * requests that ended with different trials never send one key with two sets of parameters.
 */
static void stripe_key(const char *key, int64_t trial_days, char out[STRIPE_IDEMPOTENCY_KEY_MAX])
{
    char subject[STRIPE_IDEMPOTENCY_KEY_MAX + 24];

    snprintf(subject, sizeof(subject), "%s\n%lld", key, (long long)trial_days);
    stripe_idempotency_key_for("checkout-create", subject, out);
}

static enum err answer(struct response *resp, const struct checkout_record *rec,
                       const struct checkout_ask *ask, bool had_trial)
{
    json_t *body = json_pack("{s:s, s:s}", "session_id", rec->id, "url", rec->url);
    const char *reason = NULL;

    if (ask->trial_days > 0 && rec->trial_days == 0)
        reason = had_trial ? glue_trial_decide(ask->trial_days, true).reason /* the one rule */
                           : "one trial per customer: another checkout of yours holds it";
    if (ask->trial_days > 0)
        json_object_set_new(body, "trial",
                            json_pack("{s:I, s:I, s:o}", "requested", (json_int_t)ask->trial_days,
                                      "granted", (json_int_t)rec->trial_days, "reason",
                                      reason ? json_string(reason) : json_null()));
    response_json(resp, 200, body);
    return ERR_OK;
}

/*
 * The session is no longer open at Stripe: record what it became. Paid, its subscription is
 * stored at once (as checkout-success would), so the next ask is refused too, not sold again.
 */
static enum err closed_at_stripe(struct request *req, struct stripe_client *sc,
                                 const struct checkout_record *rec)
{
    const struct api *api = req->app;
    struct stripe_checkout_session cs;
    struct subscription sub = { 0 };
    struct stripe_error se;
    bool closed = false;
    enum err err = stripe_checkout_session_retrieve(sc, rec->id, true, &cs, &sub, &se);

    if (err == ERR_NOT_FOUND)
        cs = (struct stripe_checkout_session){ .status = "expired" };
    else if (err)
        return glue_fail_stripe(req, err, &se, "read the open checkout session", NULL);
    if (strcmp(cs.status, "complete") == 0) {
        if (sub.id[0] && (err = payments_store_answer(req, sc, &se, &sub)))
            return err;
        (void)!store_checkout_close(api->store, rec->id, "complete", &closed); /* best effort */
        return request_fail(req, ERR_CONFLICT, "subscription_exists", NULL,
                            "your checkout session '%s' was just paid: you have a subscription",
                            rec->id);
    }
    if ((err = store_checkout_close(api->store, rec->id, "expired", &closed)))
        return request_fail(req, err, NULL, NULL, "cannot record the expired checkout");
    return ERR_OK;
}

/* Expires the user's open session at Stripe before another is made. */
static enum err expire_open(struct request *req, struct stripe_client *sc,
                            const struct checkout_record *rec)
{
    const struct api *api = req->app;
    struct stripe_checkout_session cs;
    struct stripe_error se;
    bool closed = false;
    enum err err = stripe_checkout_session_expire(sc, rec->id, &cs, &se);

    if (err == ERR_REFUSED || err == ERR_INVALID || err == ERR_NOT_FOUND)
        return closed_at_stripe(req, sc, rec); /* Stripe: not open any more */
    if (err)
        return glue_fail_stripe(req, err, &se, "expire the open checkout session", NULL);
    if ((err = store_checkout_close(api->store, rec->id, "expired", &closed)))
        return request_fail(req, err, NULL, NULL, "cannot record the expired checkout");
    log_info("checkout session '%s' of user '%s' expired: a new one was asked", rec->id,
             rec->user_id);
    return ERR_OK;
}

/* Reserves the trial for the session about to be made with key; *days: what it carries. */
static enum err trial_for(struct request *req, const struct checkout_ask *ask,
                          const struct customer *c, const char *key, int64_t *days)
{
    const struct api *api = req->app;
    bool reserved = false;
    enum err err;

    *days = 0;
    if (ask->trial_days <= 0 || c->had_trial)
        return ERR_OK;
    err = store_trial_reserve(api->store, c->user_id, key, clock_now(), &reserved);
    if (err)
        return request_fail(req, err, NULL, NULL, "cannot reserve the trial");
    *days = reserved ? ask->trial_days : 0;
    return ERR_OK;
}

static enum err session_make(struct request *req, struct stripe_client *sc,
                             const struct checkout_ask *ask, const struct customer *c,
                             const char *ask_key_, int64_t trial_days,
                             struct stripe_checkout_session *cs)
{
    char key[STRIPE_IDEMPOTENCY_KEY_MAX];

    struct stripe_checkout_params p = { .customer = c->stripe_customer_id,
                                        .price = ask->price_id,
                                        .success_url = ask->success_url,
                                        .cancel_url = ask->cancel_url,
                                        .client_reference_id = c->user_id,
                                        .user_id = c->user_id,
                                        .trial_period_days = trial_days,
                                        .allow_promotion_codes = ask->promotion_codes,
                                        .automatic_tax = ask->automatic_tax,
                                        .locale = ask->locale };
    struct stripe_error se;
    enum err err;

    stripe_key(ask_key_, trial_days, key);
    err = stripe_checkout_session_create(sc, &p, key, cs, &se);

    if (!err && !cs->url[0]) { /* a page nobody can open: not kept as the user's open session */
        (void)str_copy(se.message, sizeof(se.message), "the new session has no url");
        err = ERR_UPSTREAM;
    }
    if (err)
        return glue_fail_stripe(req, err, &se, "create the checkout session", NULL);
    return ERR_OK;
}

/*
 * Another request recorded its session first (another ask, at the same moment): ours is
 * expired at Stripe and recorded as such (its trial hold goes), and the caller tries again.
 */
static enum err lost_race(struct request *req, struct stripe_client *sc,
                          const struct checkout_record *ours)
{
    const struct api *api = req->app;
    struct checkout_record dead = *ours;
    struct stripe_checkout_session cs;
    struct stripe_error se;
    enum err err = stripe_checkout_session_expire(sc, ours->id, &cs, &se);

    if (err && err != ERR_REFUSED && err != ERR_INVALID && err != ERR_NOT_FOUND)
        log_warn("cannot expire checkout session '%s' that lost a race: %s", ours->id, se.message);
    (void)str_copy(dead.status, sizeof(dead.status), "expired");
    if ((err = store_checkout_open(api->store, &dead, NULL)) && err != ERR_CONFLICT)
        return request_fail(req, err, NULL, NULL, "cannot record the checkout");
    return ERR_OK;
}

enum err checkout_session_open(struct request *req, struct stripe_client *sc,
                               const struct checkout_ask *ask, const struct customer *c,
                               struct response *resp)
{
    const struct api *api = req->app;
    char digest[HMAC_SHA256_HEX_LEN + 1], key[STRIPE_IDEMPOTENCY_KEY_MAX];
    struct checkout_record latest, rec, other;
    struct stripe_checkout_session cs;
    enum err err;

    if (ask_digest(ask, digest) != ERR_OK)
        return request_fail(req, ERR_INTERNAL, NULL, NULL, "cannot digest the checkout");
    for (int round = 0; round < CHECKOUT_ROUNDS; round++) {
        int64_t now = clock_now(), trial_days = 0;
        bool have = false;
        err = store_checkout_latest(api->store, c->user_id, &latest);
        if (err && err != ERR_NOT_FOUND)
            return request_fail(req, err, NULL, NULL, "cannot read the open checkout");
        have = err == ERR_OK;
        if (have && strcmp(latest.status, "open") == 0 && latest.expires_at > now) {
            if (strcmp(latest.fingerprint, digest) == 0)
                return answer(resp, &latest, ask, c->had_trial); /* the same ask: the same one */
            if ((err = expire_open(req, sc, &latest)))
                return err;
        }
        ask_key(c->user_id, digest, have ? latest.id : "", round, key);
        if ((err = trial_for(req, ask, c, key, &trial_days)) ||
            (err = session_make(req, sc, ask, c, key, trial_days, &cs)))
            return err;
        rec =
            (struct checkout_record){ .trial_days = trial_days, .status = "open", .created = now };
        rec.expires_at = cs.expires_at > now ? cs.expires_at : now + SESSION_TTL_S;
        if (!str_copy(rec.id, sizeof(rec.id), cs.id) ||
            !str_copy(rec.user_id, sizeof(rec.user_id), c->user_id) ||
            !str_copy(rec.fingerprint, sizeof(rec.fingerprint), digest) ||
            !str_copy(rec.idem_key, sizeof(rec.idem_key), key) ||
            !str_copy(rec.url, sizeof(rec.url), cs.url))
            return request_fail(req, ERR_UPSTREAM, NULL, NULL, "stripe's session is too long");
        err = store_checkout_open(api->store, &rec, &other);
        if (!err)
            return answer(resp, &rec, ask, c->had_trial);
        if (err == ERR_CONFLICT && strcmp(other.id, rec.id) == 0)
            return answer(resp, &other, ask, c->had_trial); /* a concurrent same ask recorded it */
        if (err != ERR_CONFLICT)
            return request_fail(req, err, NULL, NULL, "cannot record the checkout");
        if ((err = lost_race(req, sc, &rec)))
            return err;
    }
    return request_fail(req, ERR_CONFLICT, "checkout_busy", NULL,
                        "another checkout of yours was started at the same time: try again");
}
