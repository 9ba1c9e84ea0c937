/*
 * objects.h: Stripe's JSON objects mapped to plain value structs (customer, checkout session,
 * subscription, invoice, portal session, list pages, the error object). Pure: no I/O. Every
 * reader refuses a malformed object with ERR_UPSTREAM and says why in se->message.
 */
#ifndef SUBGATE_STRIPE_OBJECTS_H
#define SUBGATE_STRIPE_OBJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/base.h"
#include "base/err.h"
#include "billing/records.h"

#define STRIPE_LIST_MAX   100 /* Stripe's own cap on `limit` */
#define STRIPE_NAME_MAX   256
#define STRIPE_REQ_ID_MAX 64

/*
 * What went wrong on a Stripe call: Stripe's error object when it sent one, else our own
 * description (network failure, malformed answer). Never holds the API key.
 */
struct stripe_error {
    int http_status;                    /* 0 when no HTTP answer came */
    char type[64];                      /* card_error, invalid_request_error, api_error, ... */
    char code[64];                      /* resource_missing, card_declined, ... ("" when none) */
    char decline_code[64];              /* insufficient_funds, ... ("" when none) */
    char param[128];                    /* the parameter Stripe objected to ("" when none) */
    char message[512];                  /* Stripe's message, or ours; never a secret */
    char request_id[STRIPE_REQ_ID_MAX]; /* Stripe's Request-Id header ("" when none) */
    int attempts;                       /* HTTP attempts made, retries included */
    int64_t answered_at; /* the Date of Stripe's last answer (Stripe's clock), 0 when none */
};

#define STRIPE_METADATA_MAX       50 /* Stripe's cap on the keys of one object's metadata */
#define STRIPE_METADATA_KEY_MAX   41 /* bytes of a key, NUL included: Stripe's are 40 at most */
#define STRIPE_METADATA_VALUE_MAX USER_ID_MAX /* bytes kept of a value, NUL included: an id */

/* One key of an object's metadata. */
struct stripe_metadata_entry {
    char key[STRIPE_METADATA_KEY_MAX];
    char value[STRIPE_METADATA_VALUE_MAX]; /* "" when the value is too long to keep */
    size_t value_len;                      /* the value's length in bytes at Stripe */
};

/*
 * An object's metadata, as far as subgate reads it: keys in the answer's order; a key longer than
 * STRIPE_METADATA_KEY_MAX - 1 bytes (no key subgate asks for is) and keys beyond
 * STRIPE_METADATA_MAX are not kept.
 */
struct stripe_metadata {
    size_t len;
    struct stripe_metadata_entry entries[STRIPE_METADATA_MAX];
};

struct stripe_customer {
    char id[STRIPE_ID_MAX]; /* cus_... */
    char email[EMAIL_MAX];  /* "" when none */
    char name[STRIPE_NAME_MAX];
    struct stripe_metadata metadata; /* metadata.user_id is subgate's own key (customer_create) */
    int64_t created;
    bool deleted; /* a deleted customer comes back as {id, deleted: true} */
};

struct stripe_checkout_session {
    char id[STRIPE_ID_MAX]; /* cs_... */
    char url[URL_MAX];      /* the hosted page; "" once the session is complete or expired */
    char mode[32];
    char status[STATUS_MAX];          /* open, complete, expired */
    char payment_status[STATUS_MAX];  /* paid, unpaid, no_payment_required */
    char customer[STRIPE_ID_MAX];     /* "" when none; the id also when expanded */
    char subscription[STRIPE_ID_MAX]; /* "" when none; the id also when expanded */
    bool subscription_expanded;       /* the session carried the whole subscription object */
    char client_reference_id[USER_ID_MAX];
    char user_id[USER_ID_MAX]; /* metadata.user_id */
    int64_t expires_at;        /* when Stripe expires it unpaid; 0 when not said */
};

/* An invoice as records.h has it, plus the customer it belongs to. */
struct stripe_invoice {
    struct invoice invoice; /* user_id stays "": Stripe does not know it */
    char customer[STRIPE_ID_MAX];
    char charge[STRIPE_ID_MAX]; /* ch_... of a paid invoice with an amount; "" when none */
};

/* A refund (POST /v1/refunds). */
struct stripe_refund {
    char id[STRIPE_ID_MAX]; /* re_... */
    char charge[STRIPE_ID_MAX];
    int64_t amount;
    char status[STATUS_MAX];
};

/* One page of a list call. data is owned: free the page with its _release function. */
struct stripe_customer_page {
    struct stripe_customer *data;
    size_t len;
    bool has_more;
    char last_id[STRIPE_ID_MAX]; /* pass as starting_after for the next page; "" when empty */
};

struct stripe_subscription_page {
    struct subscription *data;
    size_t len;
    bool has_more;
    char last_id[STRIPE_ID_MAX];
};

struct stripe_invoice_page {
    struct stripe_invoice *data;
    size_t len;
    bool has_more;
    char last_id[STRIPE_ID_MAX];
};

/*
 * Parses a response body. Malformed or truncated JSON, or a top level that is not an object,
 * is ERR_UPSTREAM with the position in se->message. *out is a new reference (json_decref).
 */
MUST_CHECK enum err stripe_json_parse(const char *body, size_t len, json_t **out,
                                      struct stripe_error *se);

/*
 * Fills se from an HTTP error answer: Stripe's {"error": {...}} when the body has one (other
 * fields of se are kept: request_id, attempts), else a message naming the status.
 */
void stripe_error_from_answer(int http_status, const char *body, size_t len,
                              struct stripe_error *se);

/*
 * The subgate error for a failed answer: 401/403 ERR_UNAVAILABLE (our key is wrong), 402 or a
 * card_error ERR_QUOTA, 404 ERR_NOT_FOUND, 429 ERR_RATE_LIMITED, 400 invalid_request_error
 * ERR_REFUSED (Stripe refused for its object's state or our parameters: a subscription
 * canceled already, a charge refunded already, a schedule attached already), every other
 * status ERR_UPSTREAM (a 400 idempotency_error too); no answer at all (http_status 0)
 * ERR_UNAVAILABLE.
 */
enum err stripe_error_to_err(const struct stripe_error *se);

/*
 * The readers. Null and missing optional fields read as "" / 0 / false; a missing id, a field
 * of the wrong type, or a string longer than its field is ERR_UPSTREAM (never truncated).
 */
MUST_CHECK enum err stripe_customer_from_json(const json_t *j, struct stripe_customer *out,
                                              struct stripe_error *se);

/* The entry of key in m, or NULL when m has none. */
const struct stripe_metadata_entry *stripe_metadata_find(const struct stripe_metadata *m,
                                                         const char *key);

/*
 * sub_out (may be NULL) receives the subscription when the session carries it expanded; its
 * id is "" otherwise.
 */
MUST_CHECK enum err stripe_checkout_session_from_json(const json_t *j,
                                                      struct stripe_checkout_session *out,
                                                      struct subscription *sub_out,
                                                      struct stripe_error *se);

/*
 * Maps a subscription into records.h's struct: price_id from items.data[0].price.id,
 * current_period_start/end from the top level or, in newer API versions, items.data[0],
 * user_id from metadata.user_id. tier, past_due_since and stripe_updated are left 0/"" for
 * the caller.
 */
MUST_CHECK enum err stripe_subscription_from_json(const json_t *j, struct subscription *out,
                                                  struct stripe_error *se);

/*
 * A subscription schedule: next_price_id and next_at from the first phase starting after the
 * current phase's start (the first phase when none runs yet). stripe_updated is left 0 for the
 * caller.
 */
MUST_CHECK enum err stripe_schedule_from_json(const json_t *j, struct schedule_record *out,
                                              struct stripe_error *se);

/* The upcoming invoice (GET /v1/invoices/upcoming): a preview, with no id. */
struct stripe_upcoming {
    int64_t amount_due; /* what the customer would pay */
    int64_t subtotal, tax, total;
    char currency[CURRENCY_MAX];
    char billing_reason[64]; /* subscription_update: charged at once; subscription_cycle: later */
    int64_t period_start, period_end;
    int64_t next_payment_attempt; /* when it would be charged; 0 when not said */
    int64_t created;
};

MUST_CHECK enum err stripe_upcoming_from_json(const json_t *j, struct stripe_upcoming *out,
                                              struct stripe_error *se);

/* The subscription id reads from `subscription` or, in newer versions, parent.subscription_details.
 */
MUST_CHECK enum err stripe_invoice_from_json(const json_t *j, struct stripe_invoice *out,
                                             struct stripe_error *se);

MUST_CHECK enum err stripe_refund_from_json(const json_t *j, struct stripe_refund *out,
                                            struct stripe_error *se);

/* Reads a billing portal session's url into url_out[URL_MAX]. */
MUST_CHECK enum err stripe_portal_session_from_json(const json_t *j, char *url_out,
                                                    struct stripe_error *se);

/* List pages ({"object": "list", "data": [...], "has_more": ...}); at most STRIPE_LIST_MAX items.
 */
MUST_CHECK enum err stripe_customer_page_from_json(const json_t *j,
                                                   struct stripe_customer_page *out,
                                                   struct stripe_error *se);
MUST_CHECK enum err stripe_subscription_page_from_json(const json_t *j,
                                                       struct stripe_subscription_page *out,
                                                       struct stripe_error *se);
MUST_CHECK enum err stripe_invoice_page_from_json(const json_t *j, struct stripe_invoice_page *out,
                                                  struct stripe_error *se);

/* Free a page's items and empty it; a zeroed page is fine. */
void stripe_customer_page_release(struct stripe_customer_page *p);
void stripe_subscription_page_release(struct stripe_subscription_page *p);
void stripe_invoice_page_release(struct stripe_invoice_page *p);

#endif /* SUBGATE_STRIPE_OBJECTS_H */
