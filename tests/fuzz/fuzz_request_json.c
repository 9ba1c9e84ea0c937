/*
 * fuzz_request_json.c: arbitrary bytes as a JSON request body, parsed as the server does and
 * validated by the checkout handler (the richest body of the API), with no Stripe configured.
 */
#include <stdint.h>
#include <string.h>

#include "api/api.h"
#include "api/handlers.h"
#include "billing/tiers.h"
#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tier_catalog tiers;
static struct config cfg;
static char origin_a[] = "http://localhost:3000", origin_b[] = "https://app.example.com";
static char *origins[] = { origin_a, origin_b };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct api api = { .cfg = &cfg, .tiers = &tiers };
    struct request req = { .method = "POST", .path = "/", .app = &api };
    struct response resp = { 0 };

    if (!tiers.tier_count) {
        tier_catalog_builtin(&tiers);
        (void)!tier_catalog_set_price_id(&tiers, "premium", NULL, "price_premium"); /* known tier */
        cfg.allowed_redirect_origins = origins;
        cfg.allowed_redirect_origin_count = 2;
    }
    buf_init(&req.body, 1 << 20);
    if (buf_append(&req.body, data, size) == ERR_OK && request_parse_json(&req) == ERR_OK) {
        enum err e = payments_create_checkout_session(&req, &resp);
        /* with no Stripe key, valid input ends in 503 and invalid input says why */
        if (e == ERR_OK || (e != ERR_UNAVAILABLE && !req.error.message[0]))
            __builtin_trap();
    }
    free(resp.body);
    json_decref(req.json);
    buf_release(&req.body);
    return 0;
}
