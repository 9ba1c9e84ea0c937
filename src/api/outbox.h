/*
 * outbox.h: delivery of the outbox's events to the app (issue #15): the signature, the retry
 * schedule, the delivery thread of `serve`, and `subgate outbox`.
 */
#ifndef SUBGATE_API_OUTBOX_H
#define SUBGATE_API_OUTBOX_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/base.h"
#include "base/err.h"
#include "base/secret.h"

struct store;
struct config;

#define OUTBOX_SIG_MAX       (32 + 8 * 68) /* "t=<unix>" and up to 8 ",v1=<64 hex>" */
#define OUTBOX_CLI_LIMIT_MAX 1000
#define OUTBOX_GIVE_UP_BASES INT64_C(25920) /* 3 days at the default 10 s base */
#define OUTBOX_CAP_BASES     INT64_C(360)   /* the longest wait: 1 hour at 10 s */

/*
 * The Subgate-Signature header for body sent at t: "t=<t>,v1=<hex>" with one v1 per secret
 * (HMAC-SHA256 of "<t>.<body>"), the first secret's first, so a receiver knowing any of them
 * verifies during a rotation.
 */
MUST_CHECK enum err outbox_sign(const struct secret *secrets, size_t n, int64_t t, const char *body,
                                size_t len, char out[OUTBOX_SIG_MAX]);

/*
 * After `attempts` failed deliveries (>= 1): the wait before the next, base_ms doubling to
 * OUTBOX_CAP_BASES * base_ms; -1 once the waits add up past OUTBOX_GIVE_UP_BASES * base_ms
 * (three days at the default base): the event is given up (status failed).
 */
int64_t outbox_retry_delay_ms(int attempts, int64_t base_ms);

/* The delivery thread: started by serve when APP_WEBHOOK_URL is set, stopped at shutdown. */
struct outbox_sender;
MUST_CHECK enum err outbox_sender_start(struct store *st, const struct config *cfg,
                                        struct outbox_sender **out);
void outbox_sender_stop(struct outbox_sender *s); /* NULL: nothing to do */

/* `subgate outbox [--failed] [--limit N] | outbox show ID | outbox replay ID`: 0, 1 or 2. */
int outbox_cli_run(struct store *st, int argc, char **argv, FILE *out, FILE *err);

#endif /* SUBGATE_API_OUTBOX_H */
