/*
 * form.h: application/x-www-form-urlencoded bodies and query strings in Stripe's bracket
 * notation (line_items[0][price], subscription_data[metadata][user_id], expand[]).
 */
#ifndef SUBGATE_STRIPE_FORM_H
#define SUBGATE_STRIPE_FORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/err.h"

#define FORM_MAX_DEFAULT ((size_t)64 * 1024) /* far above anything subgate sends */

/*
 * A form being built. The add functions record the first failure (ERR_TOO_LARGE past the cap)
 * and ignore every later add, so a caller adds all its fields and checks form_err() once; the
 * Stripe client refuses to send a form that failed.
 */
struct form {
    struct buf b;
    enum err err;
};

/* Sets up an empty form of at most max encoded bytes. Allocates nothing yet. */
void form_init(struct form *f, size_t max);

/* Frees the storage; the form is empty and reusable afterwards. */
void form_release(struct form *f);

/*
 * Adds key=value. The key is written in bracket notation ("metadata[user_id]", "expand[]"):
 * '[' and ']' stay literal, as Stripe's SDKs send them, every other byte outside the unreserved
 * set is percent-encoded. The value is percent-encoded whole.
 */
void form_add(struct form *f, const char *key, const char *value);

/* Adds key=value for a decimal integer, and key=true/false. */
void form_add_i64(struct form *f, const char *key, int64_t value);
void form_add_bool(struct form *f, const char *key, bool value);

/*
 * Adds a nested key built from n segments: {"subscription_data", "metadata", "user_id"} gives
 * subscription_data[metadata][user_id], an empty segment gives "[]". Each segment is
 * percent-encoded whole (brackets inside a segment included), so any metadata key is safe.
 */
void form_add_path(struct form *f, const char *const *segments, size_t n, const char *value);

/* The first failure of an add (ERR_OK when none). */
MUST_CHECK enum err form_err(const struct form *f);

/* The encoded form ("" when empty); borrowed. */
const char *form_str(const struct form *f);

size_t form_len(const struct form *f);

/*
 * Appends <s, n> percent-encoded: A-Z a-z 0-9 - . _ ~ as they are, space as %20, every other
 * byte (UTF-8 included) as %XX in upper case. keep_brackets leaves '[' and ']' literal.
 */
MUST_CHECK enum err form_encode(struct buf *b, const char *s, size_t n, bool keep_brackets);

#endif /* SUBGATE_STRIPE_FORM_H */
