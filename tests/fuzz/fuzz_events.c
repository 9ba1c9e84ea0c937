/*
 * fuzz_events.c: libFuzzer target for webhook event bodies: stripe/events.c (the parser) and
 * the appliers behind webhook_ingest (record and apply into an in-memory store, opened once).
 * The body is copied to a buffer of exactly its size, so any read past it is caught. Each
 * input goes in twice: the second delivery must never apply anything the first did not.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/webhook.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "billing/tiers.h"
#include "store/store.h"
#include "stripe/events.h"

#define PRICE "price_premium_fuzz"

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
    if (tier_catalog_set_price_id(&cat, "premium", PRICE) != ERR_OK ||
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
}

static void check_ingest(const char *body, size_t len)
{
    struct webhook_outcome first, again;
    enum err err = webhook_ingest(st, &cat, body, len, STORE_EVENT_RECEIVE, &first);

    if (err != ERR_OK)
        return;
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
    check_parse(body, size);
    check_ingest(body, size);
    free(body);
    return 0;
}
