/*
 * test_outbox.c: the outgoing webhook signature (checked against HMAC-SHA256 values computed by
 * Python's hmac module) and the retry schedule (doubling, the cap, giving up after three days).
 */
#include <string.h>

#include "api/outbox.h"
#include "base/secret.h"
#include "t.h"

#define NEW_SECRET "app_secret_new_0123456789abcdef"
#define OLD_SECRET "app_secret_old_0123456789abcdef"
#define BODY       "{\"id\":\"evt_1\"}"
#define MAC_NEW    "d1957031d50e39ae7c673838b217211137ab81de4c80617d5bd7baf657c821ca"
#define MAC_OLD    "e2a41d1ddcda23852ba42f1f7554de7b167ac4bacc5e27f0b1600e29a8ec959f"

static void test_sign(void)
{
    struct secret s[2] = { 0 };
    char sig[OUTBOX_SIG_MAX];

    secret_set(&s[0], NEW_SECRET, strlen(NEW_SECRET));
    secret_set(&s[1], OLD_SECRET, strlen(OLD_SECRET));
    T_EQ_I64(outbox_sign(s, 1, 1700000000, BODY, strlen(BODY), sig), ERR_OK, "one secret signs");
    T_EQ_STR(sig, "t=1700000000,v1=" MAC_NEW, "t= then one v1=");
    T_EQ_I64(outbox_sign(s, 2, 1700000000, BODY, strlen(BODY), sig), ERR_OK, "two secrets sign");
    T_EQ_STR(sig, "t=1700000000,v1=" MAC_NEW ",v1=" MAC_OLD, "a v1= per secret, the first first");
    T_EQ_I64(outbox_sign(s, 0, 1700000000, BODY, strlen(BODY), sig), ERR_INVALID, "no secret");
    T_EQ_STR(sig, "", "no header without a secret");
    secret_release(&s[0]);
    secret_release(&s[1]);
}

static void test_schedule(void)
{
    const int64_t base = 10000; /* the default: 10 s */
    int64_t total = 0, d = 0;
    int attempts = 0;

    T_EQ_I64(outbox_retry_delay_ms(1, base), 10000, "first retry after the base");
    T_EQ_I64(outbox_retry_delay_ms(2, base), 20000, "then doubling");
    T_EQ_I64(outbox_retry_delay_ms(3, base), 40000, "and doubling");
    T_EQ_I64(outbox_retry_delay_ms(9, base), 2560000, "2^8 bases");
    T_EQ_I64(outbox_retry_delay_ms(10, base), 3600000, "capped at one hour");
    T_EQ_I64(outbox_retry_delay_ms(40, base), 3600000, "still one hour");
    while ((d = outbox_retry_delay_ms(attempts + 1, base)) >= 0 && attempts < 1000) {
        total += d;
        attempts++;
    }
    T_OK(attempts < 1000, "it gives up (after %d attempts)", attempts + 1);
    T_OK(total <= 3 * 86400 * INT64_C(1000) && total > 3 * 86400 * INT64_C(1000) - 3600000,
         "after three days of waits (%lld ms)", (long long)total);
    T_EQ_I64(outbox_retry_delay_ms(1, 100), 100, "a test's shortened base");
    T_EQ_I64(outbox_retry_delay_ms(20, 100), 36000, "its cap scales with it");
    T_EQ_I64(outbox_retry_delay_ms(attempts + 1, 100), -1, "and so does giving up");
}

int main(void)
{
    test_sign();
    test_schedule();
    return t_done();
}
