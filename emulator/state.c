/* state.c: the emulator's object store (see state.h): arrays in creation order plus id indexes. */
#include "state.h"

#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "base/clock.h"
#include "base/str.h"
#include "base/xalloc.h"

struct emu_state {
    json_t *all[EMU_KIND_COUNT];   /* arrays, oldest first */
    json_t *index[EMU_KIND_COUNT]; /* id -> the same objects */
    json_t *priv;                  /* id -> private data */
    char premium[EMU_ID_MAX];
    char plus[EMU_ID_MAX];
};

struct kind_info {
    const char *prefix;
    const char *name;
};

static const struct kind_info kinds[EMU_KIND_COUNT] = {
    [EMU_CUSTOMER] = { "cus_", "customer" },
    [EMU_PRODUCT] = { "prod_", "product" },
    [EMU_PRICE] = { "price_", "price" },
    [EMU_SESSION] = { "cs_", "checkout.session" },
    [EMU_SUBSCRIPTION] = { "sub_", "subscription" },
    [EMU_INVOICE] = { "in_", "invoice" },
    [EMU_PORTAL] = { "bps_", "billing_portal.session" },
    [EMU_CLOCK] = { "clock_", "test_helpers.test_clock" },
    [EMU_PAYMENT_INTENT] = { "pi_", "payment_intent" },
    [EMU_CHARGE] = { "ch_", "charge" },
    [EMU_REFUND] = { "re_", "refund" },
    [EMU_SCHEDULE] = { "sub_sched_", "subscription_schedule" },
    [EMU_COUPON] = { "coupon_", "coupon" },
    [EMU_PROMOTION_CODE] = { "promo_", "promotion_code" },
};

/* The prices that exist from the start: premium and plus. */
struct seed_price {
    const char *product_id;
    const char *product_name;
    int64_t unit_amount;
    const char *interval;
};

static const struct seed_price seed_prices[] = {
    { "prod_premium", "Premium", 999, "month" },
    { "prod_plus", "Plus", 1999, "month" },
};

/* The yearly prices; seeded first, so that lists (newest first) still begin as before. */
static const struct {
    const char *id;
    struct seed_price price;
} seed_annual[] = {
    { EMU_ANNUAL_PRICE, { "prod_premium", "Premium", 9990, "year" } },
    { EMU_PLUS_ANNUAL_PRICE, { "prod_plus", "Plus", 19990, "year" } },
};

#define SEED_CREATED INT64_C(1700000000)

void emu_id_new(const char *prefix, char *out, size_t outlen)
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char rnd[24];
    size_t n = strlen(prefix);

    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        abort(); /* no randomness: nothing sensible to do */
    str_copy(out, outlen, prefix);
    for (size_t i = 0; i < sizeof(rnd) && n + 1 < outlen; i++)
        out[n++] = alphabet[rnd[i] % 62];
    out[n] = '\0';
}

static json_t *product_json(const struct seed_price *sp)
{
    return json_pack("{s:s,s:s,s:b,s:I,s:n,s:n,s:[],s:[],s:b,s:{},s:s,s:I,s:n}", "id",
                     sp->product_id, "object", "product", "active", 1, "created",
                     (json_int_t)SEED_CREATED, "default_price", "description", "features", "images",
                     "livemode", 0, "metadata", "name", sp->product_name, "updated",
                     (json_int_t)SEED_CREATED, "url");
}

static json_t *price_json(const char *id, const struct seed_price *sp)
{
    char dec[32];

    snprintf(dec, sizeof(dec), "%lld", (long long)sp->unit_amount);
    return json_pack("{s:s,s:s,s:b,s:s,s:I,s:s,s:n,s:b,s:n,s:{},s:n,s:s,"
                     "s:{s:n,s:s,s:i,s:s},s:s,s:n,s:n,s:s,s:I,s:s}",
                     "id", id, "object", "price", "active", 1, "billing_scheme", "per_unit",
                     "created", (json_int_t)SEED_CREATED, "currency", "usd", "custom_unit_amount",
                     "livemode", 0, "lookup_key", "metadata", "nickname", "product", sp->product_id,
                     "recurring", "aggregate_usage", "interval", sp->interval, "interval_count", 1,
                     "usage_type", "licensed", "tax_behavior", "unspecified", "tiers_mode",
                     "transform_quantity", "type", "recurring", "unit_amount",
                     (json_int_t)sp->unit_amount, "unit_amount_decimal", dec);
}

static json_t *coupon_json(void)
{
    return json_pack("{s:s,s:s,s:n,s:I,s:n,s:s,s:i,s:b,s:n,s:{},s:s,s:i,s:n,s:i,s:b}", "id",
                     EMU_COUPON_ID, "object", "coupon", "amount_off", "created",
                     (json_int_t)SEED_CREATED, "currency", "duration", "repeating",
                     "duration_in_months", 3, "livemode", 0, "max_redemptions", "metadata", "name",
                     "20% off for 3 months", "percent_off", 20, "redeem_by", "times_redeemed", 0,
                     "valid", 1);
}

static json_t *promotion_code_json(void)
{
    return json_pack("{s:s,s:s,s:b,s:s,s:o,s:I,s:n,s:n,s:b,s:n,s:{},s:{s:b,s:n,s:n},s:i}", "id",
                     EMU_PROMO_ID, "object", "promotion_code", "active", 1, "code", EMU_PROMO_CODE,
                     "coupon", coupon_json(), "created", (json_int_t)SEED_CREATED, "customer",
                     "expires_at", "livemode", 0, "max_redemptions", "metadata", "restrictions",
                     "first_time_transaction", 0, "minimum_amount", "minimum_amount_currency",
                     "times_redeemed", 0);
}

static void seed(struct emu_state *st)
{
    const char *ids[] = { st->premium, st->plus };

    for (size_t i = 0; i < ARRAY_SIZE(seed_annual); i++)
        emu_state_put(st, EMU_PRICE, price_json(seed_annual[i].id, &seed_annual[i].price));
    emu_state_put(st, EMU_COUPON, coupon_json());
    emu_state_put(st, EMU_PROMOTION_CODE, promotion_code_json());

    for (size_t i = 0; i < ARRAY_SIZE(seed_prices); i++) {
        json_t *prod = product_json(&seed_prices[i]);
        json_object_set_new(prod, "default_price", json_string(ids[i]));
        emu_state_put(st, EMU_PRODUCT, prod);
        emu_state_put(st, EMU_PRICE, price_json(ids[i], &seed_prices[i]));
    }
}

static void clear(struct emu_state *st)
{
    for (size_t k = 0; k < EMU_KIND_COUNT; k++) {
        json_decref(st->all[k]);
        json_decref(st->index[k]);
        st->all[k] = json_array();
        st->index[k] = json_object();
    }
    json_decref(st->priv);
    st->priv = json_object();
}

struct emu_state *emu_state_new(const char *premium_price_id, const char *plus_price_id)
{
    struct emu_state *st = xcalloc(1, sizeof(*st));

    str_copy(st->premium, sizeof(st->premium), premium_price_id);
    str_copy(st->plus, sizeof(st->plus), plus_price_id);
    clear(st);
    seed(st);
    return st;
}

void emu_state_free(struct emu_state *st)
{
    if (!st)
        return;
    for (size_t k = 0; k < EMU_KIND_COUNT; k++) {
        json_decref(st->all[k]);
        json_decref(st->index[k]);
    }
    json_decref(st->priv);
    free(st);
}

void emu_state_reset(struct emu_state *st)
{
    clear(st);
    seed(st);
}

json_t *emu_state_get(const struct emu_state *st, enum emu_kind kind, const char *id)
{
    return id ? json_object_get(st->index[kind], id) : NULL;
}

void emu_state_put(struct emu_state *st, enum emu_kind kind, json_t *obj)
{
    const char *id = json_string_value(json_object_get(obj, "id"));

    json_object_set(st->index[kind], id, obj);
    json_array_append_new(st->all[kind], obj);
}

bool emu_state_remove(struct emu_state *st, enum emu_kind kind, const char *id)
{
    json_t *obj = json_object_get(st->index[kind], id);
    size_t i;
    json_t *v;

    if (!obj)
        return false;
    json_array_foreach(st->all[kind], i, v)
    {
        if (v == obj) {
            json_array_remove(st->all[kind], i);
            break;
        }
    }
    json_object_del(st->index[kind], id);
    return true;
}

json_t *emu_state_all(const struct emu_state *st, enum emu_kind kind)
{
    return st->all[kind];
}

/* Index in `all` (oldest first) of the object with this id, or an error when absent. */
static enum err list_find(const json_t *arr, const char *id, size_t *at)
{
    for (size_t i = json_array_size(arr); i-- > 0;) {
        json_t *v = json_array_get(arr, i);
        if (strcmp(json_string_value(json_object_get(v, "id")), id) == 0) {
            *at = i;
            return ERR_OK;
        }
    }
    return ERR_NOT_FOUND;
}

static bool list_takes(const struct emu_list_params *p, const json_t *v)
{
    return !p->match || p->match(v, p->match_ctx);
}

/* From index `from` towards older objects: the first `limit` that match, newest first. */
static json_t *list_older(const struct emu_list_params *p, const json_t *arr, size_t from,
                          bool *more)
{
    json_t *data = json_array();

    for (size_t i = from; i-- > 0;) {
        json_t *v = json_array_get(arr, i);
        if (!list_takes(p, v))
            continue;
        if ((int64_t)json_array_size(data) == p->limit) {
            *more = true;
            break;
        }
        json_array_append_new(data, json_deep_copy(v));
    }
    return data;
}

/* From index `from` towards newer objects: the first `limit` that match, still newest first. */
static json_t *list_newer(const struct emu_list_params *p, const json_t *arr, size_t from,
                          bool *more)
{
    json_t *data = json_array();

    for (size_t i = from; i < json_array_size(arr); i++) {
        json_t *v = json_array_get(arr, i);
        if (!list_takes(p, v))
            continue;
        if ((int64_t)json_array_size(data) == p->limit) {
            *more = true;
            break;
        }
        json_array_insert_new(data, 0, json_deep_copy(v));
    }
    return data;
}

enum err emu_state_list(const struct emu_state *st, const struct emu_list_params *p, json_t **out)
{
    json_t *arr = st->all[p->kind];
    const char *cursor = p->ending_before ? p->ending_before : p->starting_after;
    size_t at = json_array_size(arr);
    json_t *data;
    bool more = false;

    if (cursor && list_find(arr, cursor, &at) != ERR_OK)
        return ERR_NOT_FOUND;
    if (p->ending_before)
        data = list_newer(p, arr, at + 1, &more);
    else
        data = list_older(p, arr, at, &more);
    *out = json_pack("{s:s,s:o,s:b,s:s}", "object", "list", "data", data, "has_more", more, "url",
                     p->url);
    return ERR_OK;
}

json_t *emu_state_private(struct emu_state *st, const char *id)
{
    json_t *p = json_object_get(st->priv, id);

    if (!p) {
        p = json_object();
        json_object_set_new(st->priv, id, p);
    }
    return p;
}

int64_t emu_state_now(const struct emu_state *st, const char *clock_id)
{
    json_t *clk = clock_id && clock_id[0] ? emu_state_get(st, EMU_CLOCK, clock_id) : NULL;

    if (!clk)
        return clock_now();
    return (int64_t)json_integer_value(json_object_get(clk, "frozen_time"));
}

int64_t emu_state_customer_now(const struct emu_state *st, const char *customer_id)
{
    json_t *cus = emu_state_get(st, EMU_CUSTOMER, customer_id);

    return emu_state_now(st, json_string_value(json_object_get(cus, "test_clock")));
}

/* The longest prefix wins: "sub_sched_" is a schedule, not a subscription. */
bool emu_kind_of_id(const char *id, enum emu_kind *out)
{
    size_t best = 0;

    for (size_t k = 0; k < EMU_KIND_COUNT; k++) {
        size_t n = strlen(kinds[k].prefix);
        if (n > best && str_has_prefix(id, kinds[k].prefix)) {
            *out = (enum emu_kind)k;
            best = n;
        }
    }
    return best > 0;
}

const char *emu_kind_name(enum emu_kind kind)
{
    return kinds[kind].name;
}

json_t *emu_state_to_json(const struct emu_state *st)
{
    json_t *objects = json_object();

    for (size_t k = 0; k < EMU_KIND_COUNT; k++)
        json_object_set(objects, kinds[k].name, st->all[k]);
    return json_pack("{s:o,s:O}", "objects", objects, "private", st->priv);
}

/* The kind named name ("customer"), or false. */
static bool kind_of_name(const char *name, enum emu_kind *out)
{
    for (size_t k = 0; k < EMU_KIND_COUNT; k++) {
        if (strcmp(kinds[k].name, name) == 0) {
            *out = (enum emu_kind)k;
            return true;
        }
    }
    return false;
}

/* Checks one kind's array of the snapshot: objects with a string "id" each. */
static enum err check_kind(const char *name, const json_t *arr, char *err, size_t errlen)
{
    enum emu_kind kind;
    size_t i;
    json_t *v;

    if (!kind_of_name(name, &kind)) {
        snprintf(err, errlen, "unknown object kind '%.64s'", name);
        return ERR_INVALID;
    }
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "objects.%s: not an array", name);
        return ERR_INVALID;
    }
    json_array_foreach(arr, i, v)
    {
        const char *id = json_string_value(json_object_get(v, "id"));
        if (!json_is_object(v) || !id || !id[0] || strlen(id) >= EMU_ID_MAX) {
            snprintf(err, errlen, "objects.%s[%zu]: not an object with an id", name, i);
            return ERR_INVALID;
        }
    }
    return ERR_OK;
}

static enum err check_snapshot(const json_t *snap, char *err, size_t errlen)
{
    json_t *objects = json_object_get(snap, "objects");
    const char *name;
    json_t *arr;

    if (!json_is_object(objects) || !json_is_object(json_object_get(snap, "private"))) {
        snprintf(err, errlen, "\"objects\" and \"private\" must be JSON objects");
        return ERR_INVALID;
    }
    json_object_foreach(objects, name, arr)
    {
        if (check_kind(name, arr, err, errlen) != ERR_OK)
            return ERR_INVALID;
    }
    return ERR_OK;
}

enum err emu_state_from_json(struct emu_state *st, const json_t *snap, char *err, size_t errlen)
{
    json_t *objects = json_object_get(snap, "objects");
    const char *name;
    json_t *arr;

    if (check_snapshot(snap, err, errlen) != ERR_OK)
        return ERR_INVALID;
    clear(st);
    json_object_foreach(objects, name, arr)
    {
        enum emu_kind kind = EMU_CUSTOMER;
        size_t i;
        json_t *v;
        (void)kind_of_name(name, &kind); /* checked above */
        json_array_foreach(arr, i, v)
        {
            emu_state_put(st, kind, json_deep_copy(v));
        }
    }
    json_decref(st->priv);
    st->priv = json_deep_copy(json_object_get(snap, "private"));
    return ERR_OK;
}
