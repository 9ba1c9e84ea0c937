/*
 * backend.h: what a storage backend implements (store_ops, one entry per domain operation) and
 * the record layouts they share. Included by store.c and the backends only, never by callers.
 */
#ifndef SUBGATE_STORE_BACKEND_H
#define SUBGATE_STORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "base/err.h"
#include "billing/records.h"
#include "store/store.h"

/*
 * Every entry is required. store.c has already validated the arguments (strings fit their
 * fields, required ones non-empty, counts in range), so a backend only talks to its database.
 */
struct store_ops {
    const char *name;
    void (*close)(struct store *st);
    enum err (*migrate)(struct store *st, int *applied, char *errbuf, size_t errlen);
    enum err (*schema_version)(struct store *st, int *version);
    int (*schema_version_latest)(const struct store *st);
    enum err (*ping)(struct store *st);
    enum err (*customer_get)(struct store *st, const char *user_id, struct customer *out);
    enum err (*customer_get_by_stripe_id)(struct store *st, const char *stripe_customer_id,
                                          struct customer *out);
    enum err (*customer_insert)(struct store *st, const struct customer *c);
    enum err (*customer_mark_trial)(struct store *st, const char *user_id);
    enum err (*subscription_upsert)(struct store *st, const struct subscription *s,
                                    int64_t updated_at);
    enum err (*subscription_apply)(struct store *st, const struct subscription *s,
                                   int64_t updated_at, bool *applied);
    enum err (*subscription_get)(struct store *st, const char *id, struct subscription *out);
    enum err (*subscription_get_for_user)(struct store *st, const char *user_id,
                                          struct subscription *out);
    enum err (*invoice_upsert)(struct store *st, const struct invoice *inv);
    enum err (*invoice_list)(struct store *st, const char *user_id, int max, struct invoice *out,
                             int *n);
    enum err (*usage_get)(struct store *st, const char *user_id, const char *quota,
                          int64_t window_start, int64_t *used);
    enum err (*usage_consume)(struct store *st, const struct usage_grant *g, bool *granted,
                              int64_t *used_after);
    enum err (*event_get)(struct store *st, const char *id, struct webhook_event *out);
    enum err (*event_record_apply)(struct store *st, const struct store_event_in *in, int64_t now,
                                   enum store_event_result *result, char *errbuf, size_t errlen);
    enum err (*event_record_failed)(struct store *st, const struct store_event_in *in, int64_t now,
                                    const char *why);
    enum err (*event_list)(struct store *st, bool failed_only, int max, struct webhook_event *out,
                           int *n);
    enum err (*event_get_raw)(struct store *st, const char *id, struct webhook_event *out,
                              char **raw, size_t *raw_len);
    enum err (*usage_consume_once)(struct store *st, const struct usage_grant *g,
                                   const struct store_idempotency *k, store_reply_fn render,
                                   void *ctx, struct store_reply *out);
};

/* The handle callers hold; a backend embeds it as the first member of its own struct. */
struct store {
    const struct store_ops *ops;
};

/* Opens a backend from the part of the URL after its scheme ("var/x.db" for "sqlite:var/x.db"). */
typedef enum err (*store_open_fn)(const char *target, int pool_size, struct store **out,
                                  char *errbuf, size_t errlen);

MUST_CHECK enum err sqlite_store_open(const char *target, int pool_size, struct store **out,
                                      char *errbuf, size_t errlen);

/* target is the URL after "postgres://" or "postgresql://" (user:password@host:port/db?...). */
MUST_CHECK enum err pg_store_open(const char *target, int pool_size, struct store **out,
                                  char *errbuf, size_t errlen);

/*
 * Record layouts, so backends bind and read whole records from one table per record, and
 * store.c validates them from the same tables. The field order is the column order of every
 * backend's SQL for that record.
 */
enum store_field_kind {
    FIELD_TEXT, /* char[size], NUL-terminated */
    FIELD_I64,  /* int64_t */
    FIELD_INT,  /* int */
    FIELD_BOOL, /* bool */
};

struct store_field {
    const char *name; /* the column */
    enum store_field_kind kind;
    size_t off;    /* offsetof in the record */
    size_t size;   /* bytes of a FIELD_TEXT array */
    bool required; /* FIELD_TEXT that must not be empty */
};

struct store_record {
    const char *name; /* "customer", for messages */
    size_t size;      /* sizeof the record struct */
    const struct store_field *fields;
    size_t count;
};

extern const struct store_record store_customer_record;
extern const struct store_record store_subscription_record;
extern const struct store_record store_invoice_record;
extern const struct store_record store_event_record;

/* Writes one formatted line into errbuf (which may be NULL when errlen is 0). */
void store_errf(char *errbuf, size_t errlen, const char *fmt, ...) PRINTF_LIKE(3, 4);

#endif /* SUBGATE_STORE_BACKEND_H */
