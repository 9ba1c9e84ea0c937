/*
 * records.h: the plain value records of the domain (customer, subscription, invoice, usage).
 * Fields that mirror a Stripe object keep Stripe's names. Shared by billing/, store/ and api/.
 */
#ifndef SUBGATE_BILLING_RECORDS_H
#define SUBGATE_BILLING_RECORDS_H

#include <stdbool.h>
#include <stdint.h>

#include "billing/status.h"

#define USER_ID_MAX   256 /* bytes of a user id (JWT "sub"), terminator included */
#define EMAIL_MAX     320
#define STRIPE_ID_MAX 256 /* Stripe ids are far shorter; a longer one is rejected */
#define TIER_ID_MAX   32
#define STATUS_MAX    32
#define CURRENCY_MAX  8
#define URL_MAX       2048
#define QUOTA_ID_MAX  32

/*
 * The times a record may hold: Unix seconds from 1970 up to the last second of year 9999. A time
 * outside is refused where it comes in (webhooks, Stripe's answers), so arithmetic on times,
 * with day or grace-period offsets added, never overflows.
 */
#define BILLING_TIME_MAX INT64_C(253402300799) /* 9999-12-31T23:59:59Z */

struct customer {
    char user_id[USER_ID_MAX];
    char stripe_customer_id[STRIPE_ID_MAX];
    char email[EMAIL_MAX]; /* "" when the token had none */
    bool had_trial;        /* one trial per user, ever */
    int64_t created;
};

struct subscription {
    char id[STRIPE_ID_MAX]; /* sub_... */
    char user_id[USER_ID_MAX];
    char stripe_customer_id[STRIPE_ID_MAX];
    char tier[TIER_ID_MAX]; /* the catalogue tier its price maps to */
    char price_id[STRIPE_ID_MAX];
    enum sub_status status; /* parsed once from Stripe's string (billing/status.h) */
    int64_t current_period_start;
    int64_t current_period_end;
    bool cancel_at_period_end;
    int64_t cancel_at;      /* 0 when none */
    int64_t canceled_at;    /* 0 when none */
    int64_t trial_end;      /* 0 when none */
    int64_t past_due_since; /* 0 unless past_due: when it became past_due (grace clock) */
    int64_t created;        /* Stripe's `created`: of two live ones, the older is kept */
    int64_t stripe_updated; /* Stripe's time of this state: the event's `created`, or when Stripe
                               answered (its clock: a test clock's, or its Date header) */
    /* Plan changes in flight (issue #14), as Stripe's subscription object has them. */
    char schedule_id[STRIPE_ID_MAX];      /* sub_sched_... managing it (a downgrade); "" none */
    char pending_price_id[STRIPE_ID_MAX]; /* pending_update's price: an upgrade awaiting its
                                             invoice's payment; "" none */
    int64_t pending_expires_at;           /* when that pending update lapses; 0 none */
    char latest_invoice[STRIPE_ID_MAX];   /* in_...: the invoice a pending update waits for */
    /* Not stored: where this state came from, for the ordering rule. */
    bool answered;                  /* Stripe's whole state as it answered a call (not an event):
                                       it wins a tie on stripe_updated */
    char test_clock[STRIPE_ID_MAX]; /* the test clock it runs on, "" for none */
    char item_id[STRIPE_ID_MAX];    /* si_...: items.data[0], the item a plan change switches */
};

/*
 * A subscription schedule, as far as subgate uses one: a downgrade (or an interval change)
 * waiting for the period end. Made by subgate's plan change or anyone at Stripe.
 */
struct schedule_record {
    char id[STRIPE_ID_MAX];              /* sub_sched_... */
    char subscription_id[STRIPE_ID_MAX]; /* sub_...; "" until Stripe attaches one */
    char status[STATUS_MAX]; /* not_started, active: live; completed, released, canceled */
    char next_price_id[STRIPE_ID_MAX]; /* the price of the next phase; "" when none */
    int64_t next_at;                   /* when that phase starts (the change takes effect); 0 */
    int64_t stripe_updated;            /* Stripe's time of this state */
};

struct invoice {
    char id[STRIPE_ID_MAX]; /* in_... */
    char user_id[USER_ID_MAX];
    char subscription_id[STRIPE_ID_MAX];
    char number[64];
    char status[STATUS_MAX];
    int64_t amount_due;
    int64_t amount_paid;
    char currency[CURRENCY_MAX];
    int64_t created;
    int64_t period_start;
    int64_t period_end;
    char hosted_invoice_url[URL_MAX];
    char invoice_pdf[URL_MAX];
};

#define GRANT_ID_MAX     64
#define GRANT_REASON_MAX 256

/*
 * A tier granted to a user outside Stripe (issue #15: Enterprise by contract, comps, support):
 * in force from starts_at until ends_at (0: no end) unless revoked. The user's tier is the best
 * of Stripe's and the grants in force.
 */
struct grant_record {
    char id[GRANT_ID_MAX]; /* grant_... */
    char user_id[USER_ID_MAX];
    char tier[TIER_ID_MAX];
    int64_t starts_at;
    int64_t ends_at; /* 0: no end */
    char reason[GRANT_REASON_MAX];
    int64_t created_at;
    int64_t revoked_at;   /* 0: not revoked */
    int64_t announced_at; /* its latest clock transition announced (start or end); 0: none */
};

/* A request to use n units of a metered quota in one window. */
struct usage_grant {
    char user_id[USER_ID_MAX];
    char quota[QUOTA_ID_MAX]; /* "ai_minutes", "scenarios", ... */
    int64_t window_start;     /* Unix seconds: the window's key */
    int64_t n;                /* units asked for, > 0 */
    int64_t limit;            /* the tier's limit; < 0 means unlimited */
    bool track;               /* recorded whatever the limit (POST /access/track) */
    /* For the usage ledger (borrowed, may be NULL): the caller's Idempotency-Key, request id. */
    const char *idem_key;
    const char *request_id;
};

/* The window_start of a quota's balance row: units used once a window's allowance is spent. */
#define QUOTA_BALANCE INT64_MIN

/*
 * Extra units of a quota granted to a user (issue #15): for one window (window_start), on top
 * of the tier's limit, or as a balance (window_start QUOTA_BALANCE) drawn on once a window's
 * allowance is spent. taken: on a window's row, the balance units its consumes drew.
 */
struct quota_extra {
    char user_id[USER_ID_MAX];
    char quota[QUOTA_ID_MAX];
    int64_t window_start;
    int64_t units;
    int64_t taken;
};

#define LEDGER_KIND_MAX 16
#define LEDGER_KEY_MAX  256 /* an Idempotency-Key header: 1-255 bytes */
#define LEDGER_REQ_MAX  32  /* a request id: "req_" and 16 hex digits */

/*
 * One entry of the usage ledger (issue #15): every change of a user's usage or quota units,
 * append-only, written in the transaction of the change. kind: "consume" (granted), "refund",
 * "track" or "grant". window_start: the counter's window (QUOTA_BALANCE for a balance grant).
 * used_after: the window's counter after the change. balance: units taken from (< 0) or put
 * into (> 0) the balance. id: assigned by the database, increasing.
 */
struct ledger_entry {
    char user_id[USER_ID_MAX];
    char quota[QUOTA_ID_MAX];
    char kind[LEDGER_KIND_MAX];
    int64_t amount;
    int64_t window_start;
    int64_t used_after;
    int64_t balance;
    char idem_key[LEDGER_KEY_MAX];
    char request_id[LEDGER_REQ_MAX];
    char reason[GRANT_REASON_MAX];
    int64_t created_ms; /* Unix milliseconds */
    int64_t id;
};

/*
 * What a consume or track decided, as its answer shows it: kept under the request's idempotency
 * key, so a retry is answered the same whatever changed since.
 */
struct usage_outcome {
    bool granted;
    int64_t used;           /* the counter right after the decision */
    int64_t limit;          /* the tier's limit; < 0 means unlimited */
    int64_t remaining;      /* < 0 means unlimited */
    int64_t window_start;   /* Unix seconds */
    int64_t resets_at;      /* the end of the window */
    char tier[TIER_ID_MAX]; /* the tier it was decided under */
    int64_t extra;          /* granted units on top of limit in this window (issue #15) */
    int64_t balance;        /* the quota's balance after the decision */
};

#endif /* SUBGATE_BILLING_RECORDS_H */
