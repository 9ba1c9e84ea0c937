/*
 * tiers.c: the tier catalogue: the built-in table, lookups, TIERS_FILE validation and the
 * /pricing JSON. Pure: the caller reads the file and passes its bytes.
 */
#include "billing/tiers.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include <jansson.h>

#include "base/str.h"

#define PATH_LEN 96 /* "tiers[15].features[31]" and the like */

/* Sets features and feature_count together, so the count cannot drift from the list. */
#define FEATURES(...)            \
    .features = { __VA_ARGS__ }, \
    .feature_count = sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(const char *)

#define FREE_FEATURES       "basic_lessons", "ai_conversation"
#define PREMIUM_FEATURES    FREE_FEATURES, "unlimited_ai", "all_scenarios", "progress_tracking"
#define PLUS_FEATURES       PREMIUM_FEATURES, "custom_ai", "business_german"
#define ENTERPRISE_FEATURES PLUS_FEATURES, "self_hosted", "white_label", "priority_support"

/* The original app's catalogue (SPEC section 4); docs/tiers.example.json says the same. */
static const struct tier_catalog builtin = {
    .quota_count = 2,
    .quotas = {
        { .id = "ai_minutes", .unit = "minute", .window = QUOTA_WINDOW_DAY },
        { .id = "scenarios", .unit = "scenario", .window = QUOTA_WINDOW_WEEK },
    },
    .tier_count = 4,
    .default_tier = 0,
    .tiers = {
        {
            .id = "free",
            .name = "Free",
            .description = "Basic lessons, 30 AI minutes a day and 5 scenarios a week",
            .rank = 0,
            .price_count = 1,
            .prices = { { .amount = 0, .currency = "usd", .interval = "month" } },
            FEATURES(FREE_FEATURES),
            .limits = { 30, 5 },
        },
        {
            .id = "premium",
            .name = "Premium",
            .description = "Unlimited AI learning and all learning features",
            .rank = 1,
            .price_count = 2,
            .prices = { { .amount = 999, .currency = "usd", .interval = "month" },
                        { .amount = 9990, .currency = "usd", .interval = "year" } },
            .checkout = true,
            FEATURES(PREMIUM_FEATURES),
            .limits = { TIER_UNLIMITED, TIER_UNLIMITED },
        },
        {
            .id = "plus",
            .name = "Plus",
            .description = "Everything in Premium, plus custom AI and business German",
            .rank = 2,
            .price_count = 2,
            .prices = { { .amount = 1999, .currency = "usd", .interval = "month" },
                        { .amount = 19990, .currency = "usd", .interval = "year" } },
            .checkout = true,
            FEATURES(PLUS_FEATURES),
            .limits = { TIER_UNLIMITED, TIER_UNLIMITED },
        },
        {
            .id = "enterprise",
            .name = "Enterprise",
            .description = "Everything in Plus, self-hosted and white-label, with priority support",
            .rank = 3,
            .contact_sales = true,
            FEATURES(ENTERPRISE_FEATURES),
            .limits = { TIER_UNLIMITED, TIER_UNLIMITED },
        },
    },
};

static const char *const intervals[] = { "month", "year" };

void tier_catalog_builtin(struct tier_catalog *out)
{
    *out = builtin;
}

/* Lookups */

const struct tier *tier_catalog_default(const struct tier_catalog *cat)
{
    return cat->tier_count ? &cat->tiers[cat->default_tier] : NULL;
}

const struct tier *tier_catalog_find(const struct tier_catalog *cat, const char *id)
{
    if (!id)
        return NULL;
    for (size_t i = 0; i < cat->tier_count; i++)
        if (strcmp(cat->tiers[i].id, id) == 0)
            return &cat->tiers[i];
    return NULL;
}

const struct tier_price *tier_catalog_find_price(const struct tier_catalog *cat,
                                                 const char *price_id, const struct tier **tier_out)
{
    if (tier_out)
        *tier_out = NULL;
    if (!price_id || !*price_id)
        return NULL;
    for (size_t i = 0; i < cat->tier_count; i++) {
        const struct tier *t = &cat->tiers[i];
        for (size_t j = 0; j < t->price_count; j++) {
            if (strcmp(t->prices[j].stripe_price_id, price_id) != 0)
                continue;
            if (tier_out)
                *tier_out = t;
            return &t->prices[j];
        }
    }
    return NULL;
}

const struct tier *tier_catalog_find_by_price(const struct tier_catalog *cat, const char *price_id)
{
    const struct tier *t = NULL;

    (void)tier_catalog_find_price(cat, price_id, &t);
    return t;
}

const struct tier_price *tier_primary_price(const struct tier *t)
{
    return !t->contact_sales && t->price_count ? &t->prices[0] : NULL;
}

const struct tier_price *tier_sold_price(const struct tier *t, const char *interval)
{
    const struct tier_price *primary = tier_primary_price(t);

    if (!interval)
        return primary;
    for (size_t i = 0; i < t->price_count; i++)
        if (!t->prices[i].legacy && strcmp(t->prices[i].interval, interval) == 0)
            return &t->prices[i];
    return NULL;
}

const struct tier_price *tier_price_for_interval(const struct tier *t, const char *interval)
{
    const struct tier_price *p = tier_sold_price(t, interval);

    return p && p->stripe_price_id[0] ? p : NULL;
}

enum tier_change tier_change_of(const struct tier *from, const struct tier_price *from_price,
                                const struct tier *to, const struct tier_price *to_price)
{
    if (from_price == to_price)
        return TIER_CHANGE_NONE;
    if (from->rank != to->rank)
        return to->rank > from->rank ? TIER_CHANGE_UPGRADE : TIER_CHANGE_DOWNGRADE;
    return tier_interval_months(to_price->interval) > tier_interval_months(from_price->interval)
               ? TIER_CHANGE_UPGRADE
               : TIER_CHANGE_DOWNGRADE;
}

int tier_interval_months(const char *interval)
{
    return !interval                        ? 0
           : strcmp(interval, "month") == 0 ? 1
           : strcmp(interval, "year") == 0  ? 12
                                            : 0;
}

static bool price_id_is_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n >= STRIPE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z')))
            return false;
    }
    return true;
}

const struct tier *tier_catalog_unpriced(const struct tier_catalog *cat)
{
    for (size_t i = 0; i < cat->tier_count; i++) {
        const struct tier *t = &cat->tiers[i];
        const struct tier_price *p = tier_primary_price(t);
        if (t->checkout && (!p || !str_has_prefix(p->stripe_price_id, "price_")))
            return t;
    }
    return NULL;
}

enum err tier_catalog_set_price_id(struct tier_catalog *cat, const char *tier_id,
                                   const char *interval, const char *price_id)
{
    const struct tier *found = tier_catalog_find(cat, tier_id);
    const struct tier_price *fp = found ? tier_sold_price(found, interval) : NULL;
    const struct tier_price *owner;
    struct tier_price *p;

    if (!fp)
        return ERR_NOT_FOUND;
    if (!price_id_is_valid(price_id))
        return ERR_INVALID;
    owner = tier_catalog_find_price(cat, price_id, NULL);
    if (owner && owner != fp)
        return ERR_CONFLICT;
    p = &cat->tiers[found - cat->tiers].prices[fp - found->prices];
    (void)!str_copy(p->stripe_price_id, sizeof(p->stripe_price_id), price_id); /* length checked */
    return ERR_OK;
}

bool tier_has_feature(const struct tier *t, const char *feature)
{
    for (size_t i = 0; i < t->feature_count; i++)
        if (strcmp(t->features[i], feature) == 0)
            return true;
    return false;
}

const struct tier *tier_catalog_lowest_with_feature(const struct tier_catalog *cat,
                                                    const char *feature)
{
    const struct tier *best = NULL;

    for (size_t i = 0; i < cat->tier_count; i++) {
        const struct tier *t = &cat->tiers[i];
        if (tier_has_feature(t, feature) && (!best || t->rank < best->rank))
            best = t;
    }
    return best;
}

int tier_catalog_quota_index(const struct tier_catalog *cat, const char *quota_id)
{
    for (size_t i = 0; i < cat->quota_count; i++)
        if (strcmp(cat->quotas[i].id, quota_id) == 0)
            return (int)i;
    return -1;
}

/* A tier users get without paying: the default tier and only it. */
static bool tier_is_free(const struct tier *t)
{
    return !t->contact_sales && t->price_count && t->prices[0].amount == 0;
}

/* TIERS_FILE validation: each check names the JSON path of what it rejects. */

struct parser {
    struct tier_catalog *cat;
    char *errbuf;
    size_t errlen;
};

/* An object's key and whether the file must give it. */
struct key_rule {
    const char *key;
    bool required;
};

static const struct key_rule root_keys[] = {
    { "quotas", true },
    { "default_tier", true },
    { "tiers", true },
};

static const struct key_rule quota_keys[] = {
    { "id", true },
    { "unit", true },
    { "window", true },
};

static const struct key_rule tier_keys[] = {
    { "id", true },
    { "name", true },
    { "description", false },
    { "rank", true },
    { "price", true }, /* null for contact_sales */
    { "contact_sales", false },
    { "checkout", false },
    { "stripe_price_id", false },
    { "prices", false },
    { "features", true },
    { "limits", true },
};

static const struct key_rule price_keys[] = {
    { "amount", true },
    { "currency", true },
    { "interval", true },
};

static const struct key_rule extra_price_keys[] = {
    { "amount", true },           { "currency", true }, { "interval", true },
    { "stripe_price_id", false }, { "legacy", false },
};

/*
 * Writes "path.key: message" (path and key each optional) to errbuf as one printable line: keys
 * and jansson's text quote the file, which may hold control bytes.
 */
static enum err fail(struct parser *p, const char *path, const char *key, const char *fmt, ...)
    PRINTF_LIKE(4, 5);

static enum err fail(struct parser *p, const char *path, const char *key, const char *fmt, ...)
{
    size_t n = 0;
    va_list ap;
    int r;

    if (p->errlen == 0)
        return ERR_INVALID;
    r = snprintf(p->errbuf, p->errlen, "%s%s%s%s", path, *path && key ? "." : "", key ? key : "",
                 *path || key ? ": " : "");
    n = r < 0 ? 0 : (size_t)r < p->errlen ? (size_t)r : p->errlen - 1;
    va_start(ap, fmt);
    (void)vsnprintf(p->errbuf + n, p->errlen - n, fmt, ap);
    va_end(ap);
    for (char *c = p->errbuf; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    return ERR_INVALID;
}

/* Formats a JSON path into dst[PATH_LEN]; paths are short, a truncated one is still useful. */
static void path_printf(char *dst, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void path_printf(char *dst, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(dst, PATH_LEN, fmt, ap);
    va_end(ap);
}

static const struct key_rule *find_rule(const struct key_rule *rules, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(rules[i].key, key) == 0)
            return &rules[i];
    return NULL;
}

/* Checks that obj is an object holding every required key and no unknown one. */
static enum err check_keys(struct parser *p, const char *path, json_t *obj,
                           const struct key_rule *rules, size_t n)
{
    const char *key;
    json_t *value;

    if (!json_is_object(obj))
        return fail(p, path, NULL, "must be an object");
    json_object_foreach(obj, key, value) if (!find_rule(rules, n, key)) return fail(
        p, path, NULL, "unknown key '%s'", key);
    for (size_t i = 0; i < n; i++)
        if (rules[i].required && !json_object_get(obj, rules[i].key))
            return fail(p, path, NULL, "missing key '%s'", rules[i].key);
    return ERR_OK;
}

static bool id_is_valid(const char *s, size_t size)
{
    size_t n = strlen(s);

    if (n == 0 || n >= size)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '_' || (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')))
            return false;
    return true;
}

/* Copies the string obj[key] into dst[size]; an absent optional key leaves dst as it is. */
static enum err get_text(struct parser *p, const char *path, json_t *obj, const char *key,
                         char *dst, size_t size)
{
    json_t *v = json_object_get(obj, key);

    if (!v)
        return ERR_OK;
    if (!json_is_string(v))
        return fail(p, path, key, "must be a string");
    if (!str_copyn(dst, size, json_string_value(v), json_string_length(v)))
        return fail(p, path, key, "must be at most %zu bytes", size - 1);
    for (const char *c = dst; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return fail(p, path, key, "must not contain control characters");
    return ERR_OK;
}

/* Copies the id v into dst[size]; the message names path.key (key may be NULL). */
static enum err id_value(struct parser *p, const char *path, const char *key, json_t *v, char *dst,
                         size_t size)
{
    if (!json_is_string(v) || !str_copy(dst, size, json_string_value(v)) || !id_is_valid(dst, size))
        return fail(p, path, key, "must be 1 to %zu characters of [a-z0-9_]", size - 1);
    return ERR_OK;
}

static enum err get_id(struct parser *p, const char *path, json_t *obj, const char *key, char *dst,
                       size_t size)
{
    return id_value(p, path, key, json_object_get(obj, key), dst, size);
}

static enum err get_bool(struct parser *p, const char *path, json_t *obj, const char *key,
                         bool *out)
{
    json_t *v = json_object_get(obj, key);

    if (!v)
        return ERR_OK;
    if (!json_is_boolean(v))
        return fail(p, path, key, "must be true or false");
    *out = json_is_true(v);
    return ERR_OK;
}

static enum err get_int(struct parser *p, const char *path, json_t *obj, const char *key,
                        int64_t min, int64_t *out)
{
    json_t *v = json_object_get(obj, key);

    if (!json_is_integer(v) || json_integer_value(v) < min) {
        if (min == INT64_MIN)
            return fail(p, path, key, "must be an integer");
        return fail(p, path, key, "must be an integer >= %" PRId64, min);
    }
    *out = json_integer_value(v);
    return ERR_OK;
}

static enum err parse_quota(struct parser *p, const char *path, json_t *obj, size_t i)
{
    struct tier_quota *q = &p->cat->quotas[i];
    json_t *window;
    enum err err;

    if ((err = check_keys(p, path, obj, quota_keys, ARRAY_SIZE(quota_keys))) ||
        (err = get_id(p, path, obj, "id", q->id, sizeof(q->id))) ||
        (err = get_id(p, path, obj, "unit", q->unit, sizeof(q->unit))))
        return err;
    window = json_object_get(obj, "window");
    if (!json_is_string(window) || quota_window_parse(json_string_value(window), &q->window))
        return fail(p, path, "window", "must be 'day', 'week', 'month' or 'billing_period'");
    for (size_t j = 0; j < i; j++)
        if (strcmp(p->cat->quotas[j].id, q->id) == 0)
            return fail(p, path, "id", "duplicate quota '%s'", q->id);
    return ERR_OK;
}

static enum err parse_quotas(struct parser *p, json_t *arr)
{
    char path[PATH_LEN];
    enum err err;

    if (!json_is_array(arr))
        return fail(p, "", "quotas", "must be an array");
    if (json_array_size(arr) > TIER_QUOTA_MAX)
        return fail(p, "", "quotas", "at most %d quotas", TIER_QUOTA_MAX);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        path_printf(path, "quotas[%zu]", i);
        if ((err = parse_quota(p, path, json_array_get(arr, i), i)))
            return err;
        p->cat->quota_count = i + 1;
    }
    return ERR_OK;
}

static bool interval_is_valid(const char *s)
{
    for (size_t i = 0; i < ARRAY_SIZE(intervals); i++)
        if (strcmp(intervals[i], s) == 0)
            return true;
    return false;
}

/* The amount, currency and interval of a price object whose keys were checked. */
static enum err parse_price_object(struct parser *p, const char *path, json_t *price,
                                   struct tier_price *tp)
{
    enum err err;
    const char *c = tp->currency;

    if ((err = get_int(p, path, price, "amount", 0, &tp->amount)) ||
        (err = get_text(p, path, price, "currency", tp->currency, sizeof(tp->currency))) ||
        (err = get_text(p, path, price, "interval", tp->interval, sizeof(tp->interval))))
        return err;
    if (strlen(c) != 3 || c[0] < 'a' || c[0] > 'z' || c[1] < 'a' || c[1] > 'z' || c[2] < 'a' ||
        c[2] > 'z')
        return fail(p, path, "currency", "must be 3 lower-case letters");
    if (!interval_is_valid(tp->interval))
        return fail(p, path, "interval", "must be 'month' or 'year'");
    return ERR_OK;
}

static enum err price_id_check(struct parser *p, const char *path, const char *id)
{
    if (id[0] && !price_id_is_valid(id))
        return fail(p, path, "stripe_price_id", "must be empty or characters of [A-Za-z0-9_]");
    return ERR_OK;
}

/* One element of a tier's "prices": another interval of a sold tier, or a legacy price. */
static enum err parse_extra_price(struct parser *p, const char *path, json_t *obj, struct tier *t,
                                  struct tier_price *tp)
{
    enum err err;

    if ((err = check_keys(p, path, obj, extra_price_keys, ARRAY_SIZE(extra_price_keys))) ||
        (err = parse_price_object(p, path, obj, tp)) ||
        (err = get_bool(p, path, obj, "legacy", &tp->legacy)) ||
        (err = get_text(p, path, obj, "stripe_price_id", tp->stripe_price_id,
                        sizeof(tp->stripe_price_id))) ||
        (err = price_id_check(p, path, tp->stripe_price_id)))
        return err;
    if (tp->legacy) {
        if (!tp->stripe_price_id[0])
            return fail(p, path, "stripe_price_id", "a legacy price needs its Stripe price id");
        return ERR_OK;
    }
    if (!t->checkout)
        return fail(p, path, "legacy",
                    "must be true: only a tier sold through checkout has other prices to sell");
    if (tp->amount == 0)
        return fail(p, path, "amount", "must be > 0 for a price that is sold");
    if (tier_sold_price(t, tp->interval))
        return fail(p, path, "interval", "tier '%s' already sells a price per %s", t->id,
                    tp->interval);
    return ERR_OK;
}

static enum err parse_extra_prices(struct parser *p, const char *path, json_t *arr, struct tier *t)
{
    char sub[PATH_LEN];
    enum err err;

    if (!arr)
        return ERR_OK;
    if (!json_is_array(arr))
        return fail(p, path, "prices", "must be an array");
    if (json_array_size(arr) > TIER_PRICE_MAX - t->price_count)
        return fail(p, path, "prices", "at most %zu prices", TIER_PRICE_MAX - t->price_count);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        struct tier_price tp = { 0 };
        path_printf(sub, "%s.prices[%zu]", path, i);
        if ((err = parse_extra_price(p, sub, json_array_get(arr, i), t, &tp)))
            return err;
        t->prices[t->price_count++] = tp;
    }
    return ERR_OK;
}

static enum err parse_price(struct parser *p, const char *path, json_t *obj, struct tier *t)
{
    json_t *price = json_object_get(obj, "price");
    char sub[PATH_LEN];
    enum err err;

    if (t->contact_sales) {
        if (!json_is_null(price))
            return fail(p, path, "price", "must be null for a contact_sales tier");
        if (t->checkout)
            return fail(p, path, "checkout", "must be false for a contact_sales tier");
        if (json_object_get(obj, "stripe_price_id"))
            return fail(p, path, "stripe_price_id",
                        "a contact_sales tier has no price to sell (legacy prices go in 'prices')");
        return ERR_OK;
    }
    if (json_is_null(price))
        return fail(p, path, "price", "must be an object (null only with contact_sales)");
    path_printf(sub, "%s.price", path);
    if ((err = check_keys(p, sub, price, price_keys, ARRAY_SIZE(price_keys))) ||
        (err = parse_price_object(p, sub, price, &t->prices[0])) ||
        (err = get_text(p, path, obj, "stripe_price_id", t->prices[0].stripe_price_id,
                        sizeof(t->prices[0].stripe_price_id))) ||
        (err = price_id_check(p, path, t->prices[0].stripe_price_id)))
        return err;
    t->price_count = 1;
    if (t->checkout && t->prices[0].amount == 0)
        return fail(p, path, "checkout", "needs a price amount > 0");
    return ERR_OK;
}

static enum err parse_features(struct parser *p, const char *path, json_t *arr, struct tier *t)
{
    char sub[PATH_LEN];
    enum err err;

    if (!json_is_array(arr))
        return fail(p, path, "features", "must be an array");
    if (json_array_size(arr) > TIER_FEATURE_MAX)
        return fail(p, path, "features", "at most %d features", TIER_FEATURE_MAX);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        path_printf(sub, "%s.features[%zu]", path, i);
        if ((err = id_value(p, sub, NULL, json_array_get(arr, i), t->features[i], FEATURE_ID_MAX)))
            return err;
        if (tier_has_feature(t, t->features[i]))
            return fail(p, sub, NULL, "duplicate feature '%s'", t->features[i]);
        t->feature_count = i + 1;
    }
    return ERR_OK;
}

static enum err parse_limits(struct parser *p, const char *path, json_t *obj, struct tier *t)
{
    bool seen[TIER_QUOTA_MAX] = { false };
    char sub[PATH_LEN];
    const char *key;
    json_t *v;
    int q;

    if (!json_is_object(obj))
        return fail(p, path, "limits", "must be an object");
    path_printf(sub, "%s.limits", path);
    json_object_foreach(obj, key, v)
    {
        if ((q = tier_catalog_quota_index(p->cat, key)) < 0)
            return fail(p, sub, NULL, "unknown quota '%s'", key);
        if (!json_is_null(v) && (!json_is_integer(v) || json_integer_value(v) < 0))
            return fail(p, sub, key, "must be an integer >= 0 or null (unlimited)");
        t->limits[q] = json_is_null(v) ? TIER_UNLIMITED : json_integer_value(v);
        seen[q] = true;
    }
    for (size_t i = 0; i < p->cat->quota_count; i++)
        if (!seen[i])
            return fail(p, sub, NULL, "missing limit for quota '%s'", p->cat->quotas[i].id);
    return ERR_OK;
}

static enum err parse_tier(struct parser *p, const char *path, json_t *obj, struct tier *t)
{
    enum err err;

    if ((err = check_keys(p, path, obj, tier_keys, ARRAY_SIZE(tier_keys))) ||
        (err = get_id(p, path, obj, "id", t->id, sizeof(t->id))) ||
        (err = get_text(p, path, obj, "name", t->name, sizeof(t->name))) ||
        (err = get_text(p, path, obj, "description", t->description, sizeof(t->description))) ||
        (err = get_int(p, path, obj, "rank", INT64_MIN, &t->rank)) ||
        (err = get_bool(p, path, obj, "contact_sales", &t->contact_sales)) ||
        (err = get_bool(p, path, obj, "checkout", &t->checkout)) ||
        (err = parse_price(p, path, obj, t)) ||
        (err = parse_extra_prices(p, path, json_object_get(obj, "prices"), t)))
        return err;
    if (!t->name[0])
        return fail(p, path, "name", "must not be empty");
    if ((err = parse_features(p, path, json_object_get(obj, "features"), t)))
        return err;
    return parse_limits(p, path, json_object_get(obj, "limits"), t);
}

/* The path of tier t's price k in the file: "tiers[1]" (primary) or "tiers[1].prices[0]". */
static void price_path(char *dst, const char *path, const struct tier *t, size_t k)
{
    if (k == 0 && !t->contact_sales)
        path_printf(dst, "%s", path);
    else
        path_printf(dst, "%s.prices[%zu]", path, k - (t->contact_sales ? 0 : 1));
}

/* Checks tier i against itself and the tiers before it: ids, ranks and price ids are unique. */
static enum err check_unique(struct parser *p, const char *path, size_t i)
{
    const struct tier *t = &p->cat->tiers[i];
    char sub[PATH_LEN];

    for (size_t j = 0; j < i; j++) {
        const struct tier *o = &p->cat->tiers[j];
        if (strcmp(o->id, t->id) == 0)
            return fail(p, path, "id", "duplicate tier '%s'", t->id);
        if (o->rank == t->rank)
            return fail(p, path, "rank", "%" PRId64 " is also the rank of tier '%s'", t->rank,
                        o->id);
    }
    for (size_t k = 0; k < t->price_count; k++) {
        const char *id = t->prices[k].stripe_price_id;
        const struct tier *owner = NULL;
        bool twice = false;
        if (!id[0])
            continue;
        (void)tier_catalog_find_price(p->cat, id, &owner); /* the tiers before this one */
        for (size_t m = 0; m < k; m++)
            twice = twice || strcmp(t->prices[m].stripe_price_id, id) == 0;
        if (owner || twice) {
            price_path(sub, path, t, k);
            return fail(p, sub, "stripe_price_id", "'%s' is also the price of tier '%s'", id,
                        owner ? owner->id : t->id);
        }
    }
    return ERR_OK;
}

static enum err parse_tiers(struct parser *p, json_t *arr)
{
    char path[PATH_LEN];
    enum err err;

    if (!json_is_array(arr))
        return fail(p, "", "tiers", "must be an array");
    if (json_array_size(arr) == 0)
        return fail(p, "", "tiers", "must list at least one tier");
    if (json_array_size(arr) > TIER_MAX)
        return fail(p, "", "tiers", "at most %d tiers", TIER_MAX);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        path_printf(path, "tiers[%zu]", i);
        if ((err = parse_tier(p, path, json_array_get(arr, i), &p->cat->tiers[i])) ||
            (err = check_unique(p, path, i)))
            return err;
        p->cat->tier_count = i + 1;
    }
    return ERR_OK;
}

/* default_tier names the one free tier: amount 0, no checkout, not contact_sales. */
static enum err parse_default(struct parser *p, json_t *v)
{
    struct tier_catalog *cat = p->cat;
    const struct tier *t;
    char path[PATH_LEN];

    if (!json_is_string(v))
        return fail(p, "", "default_tier", "must be a tier id");
    t = tier_catalog_find(cat, json_string_value(v));
    if (!t)
        return fail(p, "", "default_tier", "unknown tier '%s'", json_string_value(v));
    if (!tier_is_free(t) || t->checkout)
        return fail(p, "", "default_tier",
                    "tier '%s' must have price amount 0, no checkout and no contact_sales", t->id);
    cat->default_tier = (size_t)(t - cat->tiers);
    for (size_t i = 0; i < cat->tier_count; i++) {
        if (i != cat->default_tier && tier_is_free(&cat->tiers[i])) {
            path_printf(path, "tiers[%zu].price", i);
            return fail(p, path, "amount", "only the default tier '%s' may be free", t->id);
        }
    }
    return ERR_OK;
}

static enum err parse_root(struct parser *p, json_t *root)
{
    enum err err;

    if ((err = check_keys(p, "", root, root_keys, ARRAY_SIZE(root_keys))) ||
        (err = parse_quotas(p, json_object_get(root, "quotas"))) ||
        (err = parse_tiers(p, json_object_get(root, "tiers"))))
        return err;
    return parse_default(p, json_object_get(root, "default_tier"));
}

enum err tier_catalog_parse(const char *json, size_t len, struct tier_catalog *out, char *errbuf,
                            size_t errlen)
{
    struct parser p = { .cat = out, .errbuf = errbuf, .errlen = errlen };
    json_error_t jerr;
    json_t *root;
    enum err err;

    memset(out, 0, sizeof(*out));
    if (errlen)
        errbuf[0] = '\0';
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return fail(&p, "", NULL, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
    err = parse_root(&p, root);
    json_decref(root);
    if (err)
        memset(out, 0, sizeof(*out));
    return err;
}

/* GET /pricing */

static json_t *limit_json(int64_t limit)
{
    return limit < 0 ? json_null() : json_integer(limit);
}

static json_t *price_json(const struct tier_price *tp)
{
    if (!tp)
        return json_null();
    return json_pack("{s:I, s:s, s:s}", "amount", (json_int_t)tp->amount, "currency", tp->currency,
                     "interval", tp->interval);
}

/* The prices sold: the primary one, and each other interval with a Stripe price id. */
static json_t *prices_json(const struct tier *t)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < t->price_count; i++) {
        const struct tier_price *tp = &t->prices[i];
        if (tp == tier_primary_price(t) || (!tp->legacy && tp->stripe_price_id[0]))
            json_array_append_new(arr, price_json(tp));
    }
    return arr;
}

static json_t *features_json(const struct tier *t)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < t->feature_count; i++)
        json_array_append_new(arr, json_string(t->features[i]));
    return arr;
}

static json_t *limits_json(const struct tier_catalog *cat, const struct tier *t)
{
    json_t *obj = json_object();

    for (size_t i = 0; i < cat->quota_count; i++)
        json_object_set_new(obj, cat->quotas[i].id, limit_json(t->limits[i]));
    return obj;
}

static json_t *quotas_json(const struct tier_catalog *cat, const struct tier *t)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < cat->quota_count; i++) {
        const struct tier_quota *q = &cat->quotas[i];
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:o}", "id", q->id, "unit", q->unit,
                                             "window", quota_window_name(q->window), "limit",
                                             limit_json(t->limits[i])));
    }
    return arr;
}

static json_t *tier_json(const struct tier_catalog *cat, size_t i)
{
    const struct tier *t = &cat->tiers[i];

    return json_pack("{s:s, s:s, s:s, s:I, s:b, s:o, s:o, s:b, s:b, s:o, s:o, s:o}", "id", t->id,
                     "name", t->name, "description", t->description, "rank", (json_int_t)t->rank,
                     "default", i == cat->default_tier, "price", price_json(tier_primary_price(t)),
                     "prices", prices_json(t), "contact_sales", t->contact_sales, "checkout",
                     t->checkout, "features", features_json(t), "limits", limits_json(cat, t),
                     "quotas", quotas_json(cat, t));
}

json_t *tier_catalog_to_json(const struct tier_catalog *cat)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < cat->tier_count; i++)
        json_array_append_new(arr, tier_json(cat, i));
    return arr;
}
