/*
 * stripe_webhook_tool.c: stripe/webhook.c on the command line, so the official Stripe SDK can
 * referee it (tests/integration/webhook_sdk.test.mjs). The body is read raw from stdin.
 *   sign SECRET TIMESTAMP                 prints the Stripe-Signature header we produce
 *   verify HEADER SECRET[,SECRET...] NOW  exits 0 when valid, else 1 with the reason on stderr
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/secret.h"
#include "base/str.h"
#include "stripe/webhook.h"

#define BODY_MAX    ((size_t)1 << 20)
#define SECRETS_MAX 8

static enum err read_stdin(struct buf *b)
{
    char chunk[4096];
    size_t n;

    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
        if (buf_append(b, chunk, n) != ERR_OK)
            return ERR_TOO_LARGE;
    return ferror(stdin) ? ERR_INVALID : ERR_OK;
}

static int usage(void)
{
    fprintf(stderr, "usage: stripe_webhook_tool sign SECRET TIMESTAMP < body\n"
                    "       stripe_webhook_tool verify HEADER SECRET[,SECRET...] NOW < body\n");
    return 2;
}

static int sign(const char *secret, const char *ts, const struct buf *body)
{
    char hdr[STRIPE_WEBHOOK_SIGNED_MAX];
    int64_t t;

    if (parse_i64(ts, strlen(ts), 0, INT64_MAX, &t) != ERR_OK)
        return usage();
    if (stripe_webhook_sign_header(secret, strlen(secret), t, body->data, body->len, hdr,
                                   sizeof(hdr)) != ERR_OK) {
        fprintf(stderr, "stripe_webhook_tool: signing failed\n");
        return 1;
    }
    printf("%s\n", hdr);
    return 0;
}

/* Splits "a,b,c" into secrets; returns how many, or 0 when there are too many. */
static size_t split_secrets(const char *list, struct secret *out)
{
    size_t n = 0;

    for (const char *p = list;; n++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (n == SECRETS_MAX)
            return 0;
        secret_set(&out[n], p, len);
        if (!comma)
            return n + 1;
        p = comma + 1;
    }
}

static int verify(const char *header, const char *list, const char *now_s, const struct buf *body)
{
    struct secret secrets[SECRETS_MAX] = { { 0 } };
    const char *why = "bad arguments";
    int64_t now;
    int rc = 1;
    size_t n = split_secrets(list, secrets);

    if (n == 0 || parse_i64(now_s, strlen(now_s), INT64_MIN, INT64_MAX, &now) != ERR_OK) {
        rc = usage();
        goto out;
    }
    struct stripe_webhook_check chk = { secrets, n, now, STRIPE_WEBHOOK_TOLERANCE_S };
    if (stripe_webhook_verify(&chk, header, strlen(header), body->data, body->len, &why) == ERR_OK)
        rc = 0;
    else
        fprintf(stderr, "%s\n", why);
out:
    for (size_t i = 0; i < SECRETS_MAX; i++)
        secret_release(&secrets[i]);
    return rc;
}

int main(int argc, char **argv)
{
    struct buf body;
    int rc;

    buf_init(&body, BODY_MAX);
    if (argc < 2 || (strcmp(argv[1], "sign") == 0 ? argc != 4 : argc != 5) ||
        (strcmp(argv[1], "sign") != 0 && strcmp(argv[1], "verify") != 0))
        return usage();
    if (read_stdin(&body) != ERR_OK) {
        fprintf(stderr, "stripe_webhook_tool: cannot read the body from stdin\n");
        buf_release(&body);
        return 2;
    }
    if (strcmp(argv[1], "sign") == 0)
        rc = sign(argv[2], argv[3], &body);
    else
        rc = verify(argv[2], argv[3], argv[4], &body);
    buf_release(&body);
    return rc;
}
