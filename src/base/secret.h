/*
 * secret.h: secret bytes as a type. No printf path reaches the bytes, comparison is constant
 * time, and release wipes them (rule 31).
 */
#ifndef SUBGATE_BASE_SECRET_H
#define SUBGATE_BASE_SECRET_H

#include <stdbool.h>
#include <stddef.h>

struct secret {
    unsigned char *bytes; /* owned; NULL when unset */
    size_t len;
};

/* Replaces the secret with a copy of <p, n>. */
void secret_set(struct secret *s, const void *p, size_t n);

bool secret_is_set(const struct secret *s);

/* Constant-time in the length of the secret; false if either side is unset. */
bool secret_equal(const struct secret *s, const void *p, size_t n);

/* Borrows the bytes for a crypto call (HMAC key...). Never log them. */
const unsigned char *secret_bytes(const struct secret *s, size_t *len);

/* Wipes and frees the bytes; safe on an unset secret. */
void secret_release(struct secret *s);

#endif /* SUBGATE_BASE_SECRET_H */
