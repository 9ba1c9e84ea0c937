/*
 * fuzz_events.c: libFuzzer target for the whole webhook path: the body is signed as Stripe
 * would, the signature verified (stripe/webhook.c), the event parsed (stripe/events.c), recorded
 * and applied into an in-memory store opened once (webhook_ingest), and the user's entitlement
 * read back at the extremes of time (billing/entitlement.c). The body is copied to a buffer of
 * exactly its size, so any read past it is caught. Each input goes in twice: the second delivery
 * must never apply anything the first did not.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/webhook.h"
#include "base/log.h"
#include "base/secret.h"
#include "base/xalloc.h"
#include "billing/entitlement.h"
#include "billing/tiers.h"
#include "store/store.h"
#include "stripe/events.h"
#include "stripe/webhook.h"

#define PRICE  "price_premium_fuzz"
#define WHSEC  "whsec_fuzz_0123456789abcdef"
#define SIGNED 1700000000 /* the signature's time, and the verifier's now */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct store *st;
static struct tier_catalog cat;

static void setup(void)
{
    char msg[256];
    int applied = 0;

    log_min_level =
        (enum log_level)(LOG_ERROR + 1); /* failures are the expected outcome of most inputs */
    tier_catalog_builtin(&cat);
    if (tier_catalog_set_price_id(&cat, "premium", NULL, PRICE) != ERR_OK ||
        store_open("sqlite::memory:", 1, &st, msg, sizeof(msg)) != ERR_OK ||
        store_migrate(st, &applied, msg, sizeof(msg)) != ERR_OK)
        abort();
}

static void check_parse(const char *body, size_t len)
{
    struct billing_event ev;
    struct stripe_error se;
    enum err err;

    memset(&se, 0, sizeof(se));
    err = stripe_event_parse(body, len, &ev, &se);
    if (err != ERR_OK && err != ERR_INVALID && err != ERR_UPSTREAM)
        abort();
    if (err != ERR_INVALID && (ev.id[0] == '\0' || ev.type[0] == '\0' || ev.created < 0))
        abort(); /* an event that can be recorded names itself */
    if (err != ERR_OK && se.message[0] == '\0')
        abort(); /* a refusal says why */
    if (err == ERR_OK && billing_event_time_out_of_range(&ev))
        abort(); /* times are checked at the door */
}

/* Signed as Stripe signs, the body must verify: the door every event comes through. */
static void check_signature(const char *body, size_t len)
{
    struct secret secret = { 0 };
    const struct stripe_webhook_check chk = { &secret, 1, SIGNED, STRIPE_WEBHOOK_TOLERANCE_S };
    char header[STRIPE_WEBHOOK_SIGNED_MAX];
    const char *why = NULL;

    secret_set(&secret, WHSEC, strlen(WHSEC));
    if (stripe_webhook_sign_header(WHSEC, strlen(WHSEC), SIGNED, body, len, header,
                                   sizeof(header)) != ERR_OK ||
        stripe_webhook_verify(&chk, header, strlen(header), body, len, &why) != ERR_OK)
        abort();
    secret_release(&secret);
}

/* Whatever was stored, reading the user's entitlement is defined at any time (UBSan). */
static void check_entitlement(const char *body, size_t len)
{
    static const int64_t nows[] = { INT64_MIN, -1, 0, SIGNED, BILLING_TIME_MAX, INT64_MAX };
    struct billing_event ev;
    struct stripe_error se;
    struct subscription sub;

    if (stripe_event_parse(body, len, &ev, &se) != ERR_OK || !ev.has_sub || !ev.sub.user_id[0] ||
        store_subscription_get_for_user(st, ev.sub.user_id, &sub) != ERR_OK)
        return;
    for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
        struct entitlement e = entitlement_of(&sub, nows[i], 3 * 86400);
        if (nows[i] >= 0 && e.grants && e.until < 0)
            abort(); /* from a time on, an end of entitlement is a time */
    }
}

static void check_ingest(const char *body, size_t len)
{
    struct webhook_outcome first, again;
    enum err err = webhook_ingest(st, &cat, body, len, STORE_EVENT_RECEIVE, &first);

    if (err != ERR_OK)
        return;
    check_entitlement(body, len);
    if (webhook_ingest(st, &cat, body, len, STORE_EVENT_RECEIVE, &again) != ERR_OK ||
        again.result != STORE_EVENT_DUPLICATE)
        abort(); /* applied once: the second delivery is a duplicate */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body;

    if (!st)
        setup();
    body = xmalloc(size ? size : 1);
    memcpy(body, data, size);
    check_signature(body, size);
    check_parse(body, size);
    check_ingest(body, size);
    free(body);
    return 0;
}
