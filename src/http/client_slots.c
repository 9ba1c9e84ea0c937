/*
 * client_slots.c: the per-client count of slow requests in flight (see client_slots.h). A fixed
 * array of counters under one mutex: it is touched twice per request that calls Stripe, which
 * then waits on Stripe for far longer than any wait here.
 */
#include "http/client_slots.h"

#include <assert.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include <openssl/rand.h>

#include "base/hmac.h"
#include "base/log.h"
#include "base/xalloc.h"

#define HASH_KEY_LEN 32

struct client_slots {
    pthread_mutex_t mu;                   /* guards count */
    int *count;                           /* buckets counters: requests in flight */
    unsigned int buckets;                 /* >= 1 */
    int per_client_max;                   /* >= 1 */
    unsigned char hash_key[HASH_KEY_LEN]; /* random per table, so no one can aim at a bucket */
};

struct client_slots *client_slots_new(int buckets, int per_client_max)
{
    struct client_slots *cs = xcalloc(1, sizeof(*cs));

    cs->buckets = buckets < 1 ? 1u : (unsigned int)buckets;
    cs->per_client_max = per_client_max < 1 ? 1 : per_client_max;
    cs->count = xcalloc(cs->buckets, sizeof(*cs->count));
    if (RAND_bytes(cs->hash_key, sizeof(cs->hash_key)) != 1)
        log_warn("client slots: no random hash key: colliding keys could be chosen");
    pthread_mutex_init(&cs->mu, NULL);
    return cs;
}

static unsigned int hex_digit(char c)
{
    return (unsigned int)(c <= '9' ? c - '0' : c - 'a' + 10);
}

/*
 * The bucket of key: a keyed MAC, so the table never holds the key and a client cannot pick
 * keys that land on someone else's bucket. Should OpenSSL fail, every client
 * shares bucket 0, which refuses sooner but never lets one client past its cap.
 */
static unsigned int bucket_of(const struct client_slots *cs, const char *key, size_t len)
{
    struct hmac_part part = { key, len };
    char hex[HMAC_SHA256_HEX_LEN + 1];
    uint32_t h = 0;

    if (hmac_sha256_hex(cs->hash_key, sizeof(cs->hash_key), &part, 1, hex) != ERR_OK)
        return 0;
    for (int i = 0; i < 8; i++)
        h = (h << 4) | hex_digit(hex[i]);
    return h % cs->buckets;
}

bool client_slots_take(struct client_slots *cs, const char *key, size_t len, unsigned int *bucket)
{
    unsigned int b = bucket_of(cs, key, len);
    bool taken = false;

    pthread_mutex_lock(&cs->mu);
    if (cs->count[b] < cs->per_client_max) {
        cs->count[b]++;
        taken = true;
    }
    pthread_mutex_unlock(&cs->mu);
    *bucket = b;
    return taken;
}

void client_slots_give(struct client_slots *cs, unsigned int bucket)
{
    assert(bucket < cs->buckets);
    pthread_mutex_lock(&cs->mu);
    assert(cs->count[bucket] > 0);
    cs->count[bucket]--;
    pthread_mutex_unlock(&cs->mu);
}

int client_slots_count(struct client_slots *cs, unsigned int bucket)
{
    int n;

    pthread_mutex_lock(&cs->mu);
    n = bucket < cs->buckets ? cs->count[bucket] : 0;
    pthread_mutex_unlock(&cs->mu);
    return n;
}

void client_slots_free(struct client_slots *cs)
{
    if (!cs)
        return;
    pthread_mutex_destroy(&cs->mu);
    free(cs->count);
    free(cs);
}
