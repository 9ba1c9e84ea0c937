/*
 * fuzz_tiers.c: libFuzzer target for billing/tiers: arbitrary bytes as a TIERS_FILE body. A parse
 * either fails with a one-line message and an empty catalogue, or gives a catalogue that keeps
 * every promise of tiers.h (one free default tier, unique ids and ranks, limits in range).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"
#include "billing/tiers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_failure(const struct tier_catalog *cat, const char *err)
{
    if (cat->tier_count != 0 || cat->quota_count != 0 || err[0] == '\0')
        abort();
    for (const char *c = err; *c; c++)
        if ((unsigned char)*c < 0x20)
            abort(); /* one printable line */
}

static void check_tier(const struct tier_catalog *cat, size_t i)
{
    const struct tier *t = &cat->tiers[i];
    bool is_default = i == cat->default_tier;
    const struct tier_price *primary = tier_primary_price(t);
    bool is_free = primary && primary->amount == 0;

    if (is_default != is_free || (is_default && t->checkout))
        abort();
    if (t->checkout && (t->contact_sales || !primary || primary->amount <= 0))
        abort();
    if (tier_catalog_find(cat, t->id) != t || t->feature_count > TIER_FEATURE_MAX ||
        t->price_count > TIER_PRICE_MAX)
        abort();
    for (size_t k = 0; k < t->price_count; k++) {
        const struct tier_price *p = &t->prices[k];
        const struct tier *owner = NULL;
        if (p->amount < 0 || (p->legacy && !p->stripe_price_id[0]) ||
            (t->contact_sales && !p->legacy))
            abort();
        if (p->stripe_price_id[0] &&
            (tier_catalog_find_price(cat, p->stripe_price_id, &owner) != p || owner != t))
            abort();
        if (!p->legacy && tier_sold_price(t, p->interval) != p)
            abort();
    }
    for (size_t j = 0; j < cat->quota_count; j++)
        if (t->limits[j] < TIER_UNLIMITED)
            abort();
    for (size_t j = 0; j < i; j++)
        if (cat->tiers[j].rank == t->rank)
            abort();
}

static void check_success(const struct tier_catalog *cat)
{
    json_t *arr;

    if (cat->tier_count == 0 || cat->tier_count > TIER_MAX || cat->quota_count > TIER_QUOTA_MAX ||
        cat->default_tier >= cat->tier_count)
        abort();
    for (size_t i = 0; i < cat->quota_count; i++)
        if (tier_catalog_quota_index(cat, cat->quotas[i].id) != (int)i)
            abort();
    for (size_t i = 0; i < cat->tier_count; i++)
        check_tier(cat, i);
    arr = tier_catalog_to_json(cat);
    if (json_array_size(arr) != cat->tier_count)
        abort();
    json_decref(arr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct tier_catalog cat;
    char err[256];
    /* A copy of exactly size bytes, so reading past the body is caught. */
    char *body = xmalloc(size ? size : 1);

    memcpy(body, data, size);
    if (tier_catalog_parse(body, size, &cat, err, sizeof(err)) == ERR_OK)
        check_success(&cat);
    else
        check_failure(&cat, err);
    free(body);
    return 0;
}
