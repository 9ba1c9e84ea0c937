/*
 * state.h: the emulator's in-memory Stripe objects. Each object is stored as the JSON Stripe
 * would return, by kind, in creation order; private per-object data (a customer's test card, a
 * subscription's failed renewals) lives beside it, never in the JSON. Not thread-safe: the caller
 * holds the emulator's one mutex (emu.h).
 */
#ifndef SUBGATE_EMULATOR_STATE_H
#define SUBGATE_EMULATOR_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/base.h"
#include "base/err.h"

#define EMU_ID_MAX 96

enum emu_kind {
    EMU_CUSTOMER,
    EMU_PRODUCT,
    EMU_PRICE,
    EMU_SESSION,
    EMU_SUBSCRIPTION,
    EMU_INVOICE,
    EMU_PORTAL,
    EMU_CLOCK,
    EMU_PAYMENT_INTENT,
    EMU_CHARGE,
    EMU_REFUND,
    EMU_SCHEDULE,
    EMU_COUPON,
    EMU_PROMOTION_CODE,
    EMU_KIND_COUNT,
};

struct emu_state; /* opaque */

/* Says whether obj belongs in a list (the filter of a list call). */
typedef bool (*emu_match_fn)(const json_t *obj, const void *ctx);

struct emu_list_params {
    enum emu_kind kind;
    int64_t limit;              /* 1-100 */
    const char *starting_after; /* NULL when absent */
    const char *ending_before;  /* NULL when absent; at most one of the two is set */
    const char *url;            /* "/v1/customers" */
    emu_match_fn match;         /* NULL = every object */
    const void *match_ctx;
};

#define EMU_ANNUAL_PRICE      "price_premium_annual" /* Premium billed yearly: 9990 */
#define EMU_PLUS_ANNUAL_PRICE "price_plus_annual"    /* Plus billed yearly: 19990 */
#define EMU_COUPON_ID         "coupon_subgate20"     /* 20% off, repeating for 3 months */
#define EMU_PROMO_ID          "promo_subgate20"      /* its active promotion code */
#define EMU_PROMO_CODE        "SUBGATE20"

/*
 * A new state holding the seeded objects: the two monthly prices (and their products), the
 * annual Premium and Plus prices, a coupon and its promotion code.
 */
struct emu_state *emu_state_new(const char *premium_price_id, const char *plus_price_id);

void emu_state_free(struct emu_state *st); /* NULL is a no-op */

/* Forgets everything but the seeded objects, which start again as seeded. */
void emu_state_reset(struct emu_state *st);

/* Writes prefix + random base62 into out ("cus_Oaxlz8kB0PJWGa"). */
void emu_id_new(const char *prefix, char *out, size_t outlen);

/* The stored object of this kind and id, or NULL. Borrowed: valid until the state changes. */
json_t *emu_state_get(const struct emu_state *st, enum emu_kind kind, const char *id);

/* Stores obj (stolen; has a string "id") as the newest object of its kind. */
void emu_state_put(struct emu_state *st, enum emu_kind kind, json_t *obj);

/* Removes the object with this id; false when there was none. */
bool emu_state_remove(struct emu_state *st, enum emu_kind kind, const char *id);

/* Every object of a kind, oldest first (a borrowed array). */
json_t *emu_state_all(const struct emu_state *st, enum emu_kind kind);

/*
 * A Stripe list object ({object:"list",data,has_more,url}, newest first) of deep copies: the
 * matching objects older than starting_after, or the ones just newer than ending_before (has_more
 * then says whether still newer ones match). Fails with ERR_NOT_FOUND when the cursor names no
 * stored object.
 */
MUST_CHECK enum err emu_state_list(const struct emu_state *st, const struct emu_list_params *p,
                                   json_t **out);

/* Private data of the object with this id: a JSON object, created empty on first use. */
json_t *emu_state_private(struct emu_state *st, const char *id);

/* Now for an object on test clock clock_id (its frozen_time), or the real clock when NULL/"". */
int64_t emu_state_now(const struct emu_state *st, const char *clock_id);

/* Now for a customer: its test clock's time, or the real clock. */
int64_t emu_state_customer_now(const struct emu_state *st, const char *customer_id);

/* The kind whose ids start with this id's prefix ("cus_" -> EMU_CUSTOMER); false if none. */
bool emu_kind_of_id(const char *id, enum emu_kind *out);

/* Stripe's name of a kind for messages ("customer", "checkout.session"). */
const char *emu_kind_name(enum emu_kind kind);

/*
 * The whole state as JSON, for the state file: {"objects": {kind name: [objects, oldest
 * first]}, "private": {id: private data}}. A new reference to a tree that shares the stored
 * objects: dump it before the state changes again.
 */
json_t *emu_state_to_json(const struct emu_state *st);

/*
 * Replaces the state with a snapshot made by emu_state_to_json (copied). A snapshot of the
 * wrong shape (an unknown kind, an object without a string "id") fails with ERR_INVALID, one
 * line in err, and the state as it was.
 */
MUST_CHECK enum err emu_state_from_json(struct emu_state *st, const json_t *snap, char *err,
                                        size_t errlen);

#endif /* SUBGATE_EMULATOR_STATE_H */
