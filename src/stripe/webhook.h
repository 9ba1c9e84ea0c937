/*
 * webhook.h: Stripe webhook signatures (SPEC §5), pure: the caller passes the raw body, the
 * configured secrets and "now". Verification of "Stripe-Signature: t=...,v1=...[,v1=...]" and,
 * for tests and tools, the signing side.
 */
#ifndef SUBGATE_STRIPE_WEBHOOK_H
#define SUBGATE_STRIPE_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "base/err.h"
#include "base/secret.h"

#define STRIPE_WEBHOOK_TOLERANCE_S INT64_C(300) /* Stripe's default replay window */
#define STRIPE_WEBHOOK_HEADER_MAX  8192         /* longer headers are refused as malformed */
#define STRIPE_WEBHOOK_V1_MAX      16           /* more v1 signatures are refused as malformed */
#define STRIPE_WEBHOOK_SIGNED_MAX  96           /* "t=<20 digits>,v1=<64 hex>" plus NUL fits */

/* What a signature is checked against: the configuration and the clock, passed in. */
struct stripe_webhook_check {
    const struct secret *secrets; /* endpoint secrets as configured ("whsec_..."); borrowed */
    size_t n_secrets;             /* several allow rotation; unset ones are skipped */
    int64_t now;                  /* Unix seconds */
    int64_t tolerance_s;          /* >= 0; STRIPE_WEBHOOK_TOLERANCE_S is Stripe's default */
};

/*
 * Verifies the Stripe-Signature header <header, header_len> (header NULL or empty: missing)
 * over the raw body bytes <body, body_len>, which may hold NUL bytes. Stripe keys the HMAC
 * with the whole secret string, "whsec_" included. Passes when the timestamp t is within
 * chk->tolerance_s seconds of chk->now, either way, and any well-formed v1 (64 lower-case hex
 * digits) equals hex(HMAC-SHA256(secret, "<t>.<body>")) for any secret, compared in constant
 * time. v0, other schemes and v1 values of another shape are ignored. Parsing is strict: items
 * are "key=value" split by ',' with no spaces, t is a decimal integer given exactly once, at
 * most STRIPE_WEBHOOK_V1_MAX v1 values and STRIPE_WEBHOOK_HEADER_MAX bytes.
 *
 * Returns ERR_OK, or ERR_INVALID with *why set to one of "missing Stripe-Signature header",
 * "malformed Stripe-Signature header", "no v1 signature", "timestamp outside the tolerance
 * zone", "no signature matches" (static strings, safe to show). ERR_INTERNAL when OpenSSL
 * fails. *why is always set ("ok" on success).
 */
MUST_CHECK enum err stripe_webhook_verify(const struct stripe_webhook_check *chk,
                                          const char *header, size_t header_len, const char *body,
                                          size_t body_len, const char **why);

/*
 * Writes the header Stripe would send for <body, body_len> signed at time t (>= 0) with the
 * secret <key, key_len>: "t=<t>,v1=<hex>", NUL-terminated, into out[outlen]. ERR_TOO_LARGE
 * when out is too small (STRIPE_WEBHOOK_SIGNED_MAX always fits), ERR_INVALID when t < 0.
 */
MUST_CHECK enum err stripe_webhook_sign_header(const void *key, size_t key_len, int64_t t,
                                               const char *body, size_t body_len, char *out,
                                               size_t outlen);

#endif /* SUBGATE_STRIPE_WEBHOOK_H */
