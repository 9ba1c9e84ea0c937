/*
 * tiers.h: the tier catalogue: tiers, prices, features and quota limits. Built in (the original
 * app's, SPEC section 4) or parsed from a TIERS_FILE body; pure, the caller reads the file.
 */
#ifndef SUBGATE_BILLING_TIERS_H
#define SUBGATE_BILLING_TIERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/base.h"
#include "base/err.h"
#include "billing/quota.h"
#include "billing/records.h"

#define TIER_MAX          16 /* tiers in a catalogue */
#define TIER_QUOTA_MAX    8  /* metered quotas in a catalogue */
#define TIER_FEATURE_MAX  32 /* features of one tier */
#define FEATURE_ID_MAX    32 /* bytes of a feature id, terminator included */
#define TIER_NAME_MAX     64
#define TIER_DESC_MAX     256
#define TIER_INTERVAL_MAX 8
#define QUOTA_UNIT_MAX    32
#define TIER_PRICE_MAX    6 /* prices of one tier: the primary, other intervals, legacy ones */
#define TIER_UNLIMITED    INT64_C(-1) /* a limit with no ceiling */

/* A metered quota the catalogue defines; tiers give one limit each. */
struct tier_quota {
    char id[QUOTA_ID_MAX];     /* [a-z0-9_]: "ai_minutes", "scenarios" */
    char unit[QUOTA_UNIT_MAX]; /* "minute", "scenario" */
    enum quota_window window;
};

/*
 * One recurring price of a tier. Every configured price maps back to its tier; a legacy price
 * is kept for grandfathered subscribers and never sold again.
 */
struct tier_price {
    int64_t amount;                      /* minor units */
    char currency[CURRENCY_MAX];         /* "usd" */
    char interval[TIER_INTERVAL_MAX];    /* "month" or "year" */
    bool legacy;                         /* maps to the tier; not listed, not sold */
    char stripe_price_id[STRIPE_ID_MAX]; /* "" until configured (never for a legacy price) */
};

struct tier {
    char id[TIER_ID_MAX]; /* [a-z0-9_]: "free", "premium", ... */
    char name[TIER_NAME_MAX];
    char description[TIER_DESC_MAX];
    int64_t rank;       /* unique; a higher rank is more */
    bool contact_sales; /* sold by contract: no primary price, no checkout */
    bool checkout;      /* purchasable through Stripe Checkout */
    /*
     * prices[0] is the primary price (the file's "price" and "stripe_price_id") unless the tier
     * is contact_sales; the rest are the file's "prices": other intervals (at most one sold
     * price per interval) and legacy prices. A contact_sales tier has only legacy prices.
     */
    size_t price_count;
    struct tier_price prices[TIER_PRICE_MAX];
    size_t feature_count;
    char features[TIER_FEATURE_MAX][FEATURE_ID_MAX];
    int64_t limits[TIER_QUOTA_MAX]; /* by catalogue quota index; TIER_UNLIMITED or >= 0 */
};

/* A value struct: copy it freely, nothing to free. */
struct tier_catalog {
    size_t quota_count;
    struct tier_quota quotas[TIER_QUOTA_MAX];
    size_t tier_count;
    struct tier tiers[TIER_MAX];
    size_t default_tier; /* index of the free tier users have without a subscription */
};

/*
 * Fills *out with the built-in catalogue: free, premium, plus, enterprise. Premium and plus can be
 * bought through checkout but have no Stripe price id until tier_catalog_set_price_id().
 */
void tier_catalog_builtin(struct tier_catalog *out);

/*
 * The first tier sold through checkout whose Stripe price id is missing or is not a price id
 * ("price_..."); NULL when every such tier has one. With Stripe configured such a tier cannot be
 * sold, and a subscription to a price no tier names would be read as no tier at all.
 */
const struct tier *tier_catalog_unpriced(const struct tier_catalog *cat);

/*
 * Parses and validates a TIERS_FILE body (docs/tiers.example.json shows the format) of len bytes.
 * On error returns ERR_INVALID, empties *out and writes one line to errbuf naming the JSON path
 * and the rule ("tiers[2].price.amount: must be an integer >= 0"), or, for malformed JSON, the
 * place ("line 3 column 5: ..."). Borrows json for the call.
 */
MUST_CHECK enum err tier_catalog_parse(const char *json, size_t len, struct tier_catalog *out,
                                       char *errbuf, size_t errlen);

/* Returns the default (free) tier; never NULL for a catalogue built by this module. */
const struct tier *tier_catalog_default(const struct tier_catalog *cat);

/* Returns the tier with this id, or NULL (also for NULL). The pointer lives as long as cat. */
const struct tier *tier_catalog_find(const struct tier_catalog *cat, const char *id);

/* Returns the tier one of whose Stripe prices is price_id, or NULL (also for NULL or ""). */
const struct tier *tier_catalog_find_by_price(const struct tier_catalog *cat, const char *price_id);

/*
 * Returns the price whose Stripe id is price_id (legacy ones too), or NULL (also for NULL or
 * ""); *tier_out (may be NULL) is its tier. The pointers live as long as cat.
 */
const struct tier_price *tier_catalog_find_price(const struct tier_catalog *cat,
                                                 const char *price_id,
                                                 const struct tier **tier_out);

/* The tier's primary price; NULL for a contact_sales tier. */
const struct tier_price *tier_primary_price(const struct tier *t);

/* The tier's price sold at interval (NULL: the primary price), with a Stripe id or not; or NULL. */
const struct tier_price *tier_sold_price(const struct tier *t, const char *interval);

/*
 * The price the tier sells at interval ("month", "year"; NULL: the primary price's): not legacy,
 * with a Stripe price id. NULL when there is none.
 */
const struct tier_price *tier_price_for_interval(const struct tier *t, const char *interval);

/* Months in an interval: 1 for "month", 12 for "year", 0 for anything else. */
int tier_interval_months(const char *interval);

/* What moving a subscription from one price to another is (issue #14). */
enum tier_change {
    TIER_CHANGE_NONE,      /* the same price */
    TIER_CHANGE_UPGRADE,   /* a higher tier, or the same tier over a longer interval: now */
    TIER_CHANGE_DOWNGRADE, /* a lower tier, a shorter interval, or another price of the same
                              tier and interval: at the end of the period paid for */
};

enum tier_change tier_change_of(const struct tier *from, const struct tier_price *from_price,
                                const struct tier *to, const struct tier_price *to_price);

/*
 * Sets the Stripe price id of tier tier_id's sold price at interval (NULL: the primary price),
 * replacing any. Errors: ERR_NOT_FOUND for an unknown tier or one with no such price; ERR_INVALID
 * for a price id that is NULL, empty, too long or not [A-Za-z0-9_]; ERR_CONFLICT when another
 * price already has that id.
 */
MUST_CHECK enum err tier_catalog_set_price_id(struct tier_catalog *cat, const char *tier_id,
                                              const char *interval, const char *price_id);

bool tier_has_feature(const struct tier *t, const char *feature);

/* Returns the lowest-ranked tier that has feature, or NULL when none has it. */
const struct tier *tier_catalog_lowest_with_feature(const struct tier_catalog *cat,
                                                    const char *feature);

/* Returns the index of quota quota_id in cat->quotas and every tier's limits, or -1. */
int tier_catalog_quota_index(const struct tier_catalog *cat, const char *quota_id);

/*
 * Returns a new reference (release with json_decref()) to the "tiers" array of GET /pricing. Each
 * element: {id, name, description, rank, default, price: {amount, currency, interval} or null
 * (contact sales), prices: [{amount, currency, interval}] (the prices sold: the primary one, and
 * each other interval with a Stripe price id; [] for contact sales), contact_sales, checkout,
 * features: [...], limits: {quota_id: n or null}, quotas: [{id, unit, window, limit}]}, where a
 * null limit is unlimited.
 */
json_t *tier_catalog_to_json(const struct tier_catalog *cat);

#endif /* SUBGATE_BILLING_TIERS_H */
