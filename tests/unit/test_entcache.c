/*
 * test_entcache.c: the entitlement cache on its own, with the clock passed in: hits and misses,
 * invalidation, expiry from the start of the read, the read-then-write race refused by the
 * write generation, eviction at capacity, and entries that do not fit.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "billing/status.h"
#include "store/entcache.h"
#include "t.h"

#define TTL_MS 1000

static struct subscription make_sub(const char *user_id, const char *tier, enum sub_status st)
{
    struct subscription s;

    memset(&s, 0, sizeof(s));
    (void)snprintf(s.id, sizeof(s.id), "sub_%s", user_id);
    (void)snprintf(s.user_id, sizeof(s.user_id), "%s", user_id);
    (void)snprintf(s.stripe_customer_id, sizeof(s.stripe_customer_id), "cus_%s", user_id);
    (void)snprintf(s.tier, sizeof(s.tier), "%s", tier);
    (void)snprintf(s.price_id, sizeof(s.price_id), "price_%s_monthly", tier);
    s.status = st;
    s.current_period_start = 1700000000;
    s.current_period_end = 1702592000;
    s.cancel_at_period_end = true;
    s.cancel_at = 1702592000;
    s.trial_end = 1700600000;
    s.past_due_since = 0;
    s.stripe_updated = 1700000123;
    s.created = 1699999999;
    return s;
}

/* Reads user as store_subscription_get_for_user does: a miss puts what the "database" holds. */
static enum entcache_result lookup(struct entcache *c, const char *user, int64_t now_ms,
                                   struct subscription *out)
{
    struct entcache_ticket t;

    return entcache_get(c, user, now_ms, out, &t);
}

static void fill(struct entcache *c, const char *user, const struct subscription *sub,
                 int64_t now_ms)
{
    struct subscription out;
    struct entcache_ticket t;

    T_EQ_I64(entcache_get(c, user, now_ms, &out, &t), ENTCACHE_MISS, "%s: a miss first", user);
    T_OK(entcache_put(c, user, sub, &t), "%s: kept", user);
}

static void test_hit_miss(void)
{
    struct entcache *c = entcache_new(16, TTL_MS);
    struct subscription sub = make_sub("u_hit", "premium", SUB_STATUS_ACTIVE), got;

    T_EQ_I64(lookup(c, "u_hit", 0, &got), ENTCACHE_MISS, "empty: a miss");
    fill(c, "u_hit", &sub, 0);
    memset(&got, 0x5a, sizeof(got));
    T_EQ_I64(lookup(c, "u_hit", 10, &got), ENTCACHE_SUB, "then a hit");
    T_EQ_STR(got.id, sub.id, "id");
    T_EQ_STR(got.user_id, sub.user_id, "user id");
    T_EQ_STR(got.stripe_customer_id, sub.stripe_customer_id, "customer");
    T_EQ_STR(got.tier, "premium", "tier");
    T_EQ_STR(got.price_id, sub.price_id, "price");
    T_EQ_I64(got.status, SUB_STATUS_ACTIVE, "status");
    T_EQ_I64(got.current_period_start, sub.current_period_start, "period start");
    T_EQ_I64(got.current_period_end, sub.current_period_end, "period end");
    T_OK(got.cancel_at_period_end, "cancel at period end");
    T_EQ_I64(got.cancel_at, sub.cancel_at, "cancel at");
    T_EQ_I64(got.canceled_at, 0, "canceled at");
    T_EQ_I64(got.trial_end, sub.trial_end, "trial end");
    T_EQ_I64(got.stripe_updated, sub.stripe_updated, "stripe updated");
    T_EQ_I64(got.created, sub.created, "created");
    T_EQ_STR(got.test_clock, "", "not stored: empty, as a database read leaves it");

    fill(c, "u_none", NULL, 0);
    T_EQ_I64(lookup(c, "u_none", 10, &got), ENTCACHE_NONE, "no subscription: cached too");
    T_EQ_I64(lookup(c, "u_hi", 10, &got), ENTCACHE_MISS, "another user: a miss");
    entcache_free(c);
}

static void test_invalidate(void)
{
    struct entcache *c = entcache_new(16, TTL_MS);
    struct subscription free_sub = make_sub("u_inv", "free", SUB_STATUS_CANCELED);
    struct subscription paid = make_sub("u_inv", "premium", SUB_STATUS_ACTIVE), got;

    fill(c, "u_inv", &free_sub, 0);
    fill(c, "u_other", NULL, 0);
    entcache_invalidate(c, "u_inv");
    T_EQ_I64(lookup(c, "u_inv", 1, &got), ENTCACHE_MISS, "invalidated: read again");
    T_EQ_I64(lookup(c, "u_other", 1, &got), ENTCACHE_NONE, "another user's entry stays");
    fill(c, "u_inv", &paid, 2);
    T_EQ_I64(lookup(c, "u_inv", 3, &got), ENTCACHE_SUB, "the new state is cached");
    T_EQ_STR(got.tier, "premium", "the new state");
    entcache_clear(c);
    T_EQ_I64(lookup(c, "u_inv", 4, &got), ENTCACHE_MISS, "cleared");
    T_EQ_I64(lookup(c, "u_other", 4, &got), ENTCACHE_MISS, "cleared, every user");
    entcache_invalidate(c, "u_never_seen"); /* harmless */
    entcache_free(c);
}

static void test_ttl(void)
{
    struct entcache *c = entcache_new(16, TTL_MS);
    struct subscription sub = make_sub("u_ttl", "plus", SUB_STATUS_ACTIVE), got;
    struct entcache_ticket t;

    fill(c, "u_ttl", &sub, 5000);
    T_EQ_I64(lookup(c, "u_ttl", 5000 + TTL_MS - 1, &got), ENTCACHE_SUB, "fresh until the TTL");
    T_EQ_I64(lookup(c, "u_ttl", 5000 + TTL_MS, &got), ENTCACHE_MISS, "expired at the TTL");

    /* A read that took long: the TTL counts from when it began, not from the put. */
    T_EQ_I64(entcache_get(c, "u_slow", 9000, &got, &t), ENTCACHE_MISS, "slow read: a miss");
    T_OK(entcache_put(c, "u_slow", NULL, &t), "slow read: kept");
    T_EQ_I64(lookup(c, "u_slow", 9000 + TTL_MS - 1, &got), ENTCACHE_NONE, "slow read: fresh");
    T_EQ_I64(lookup(c, "u_slow", 9000 + TTL_MS, &got), ENTCACHE_MISS, "TTL from the read's start");
    entcache_free(c);
}

/*
 * The read-then-write race, step by step: a reader misses and takes its ticket, reads the old
 * row from the database; a writer commits the new row and invalidates; the reader's put of the
 * old row must be refused, or the old row would be served until the TTL.
 */
static void test_read_write_race(void)
{
    struct entcache *c = entcache_new(16, TTL_MS);
    struct subscription old = make_sub("u_race", "free", SUB_STATUS_CANCELED), got;
    struct entcache_ticket reader, late;

    T_EQ_I64(entcache_get(c, "u_race", 0, &got, &reader), ENTCACHE_MISS, "reader: a miss");
    /* the reader reads `old` from the database here; then the writer commits: */
    entcache_invalidate(c, "u_race");
    T_OK(!entcache_put(c, "u_race", &old, &reader), "the reader's older row is refused");
    T_EQ_I64(lookup(c, "u_race", 1, &got), ENTCACHE_MISS, "nothing cached: the next read reads");

    /* The same with "no subscription" read before the first subscription was written. */
    T_EQ_I64(entcache_get(c, "u_race", 2, &got, &reader), ENTCACHE_MISS, "reader again");
    entcache_invalidate(c, "u_race");
    T_OK(!entcache_put(c, "u_race", NULL, &reader), "an older 'none' is refused");

    /* A clear (the listener reconnecting) refuses every outstanding ticket. */
    T_EQ_I64(entcache_get(c, "u_race", 3, &got, &reader), ENTCACHE_MISS, "reader before a clear");
    entcache_clear(c);
    T_OK(!entcache_put(c, "u_race", &old, &reader), "refused after a clear");

    /* A ticket taken after the write is good. */
    T_EQ_I64(entcache_get(c, "u_race", 4, &got, &late), ENTCACHE_MISS, "a reader after the write");
    T_OK(entcache_put(c, "u_race", &old, &late), "its row is kept");
    entcache_free(c);
}

static void test_capacity(void)
{
    struct entcache *c = entcache_new(8, TTL_MS);
    struct subscription got;
    char user[32];
    int hits = 0;

    T_EQ_I64(entcache_capacity(c), 8, "capacity as asked");
    for (int i = 0; i < 200; i++) {
        struct entcache_ticket t;

        (void)snprintf(user, sizeof(user), "u_cap_%d", i);
        T_EQ_I64(entcache_get(c, user, i, &got, &t), ENTCACHE_MISS, "%s: new", user);
        (void)entcache_put(c, user, NULL, &t);
    }
    for (int i = 0; i < 200; i++) {
        (void)snprintf(user, sizeof(user), "u_cap_%d", i);
        hits += lookup(c, user, 300, &got) == ENTCACHE_NONE;
    }
    T_OK(hits > 0 && hits <= 8, "at most 8 of 200 users kept (%d)", hits);
    T_EQ_I64(lookup(c, "u_cap_199", 300, &got), ENTCACHE_NONE, "the newest is kept");
    entcache_free(c);

    c = entcache_new(5, TTL_MS);
    T_EQ_I64(entcache_capacity(c), 8, "rounded up to whole sets of 4");
    entcache_free(c);
    c = entcache_new(1, TTL_MS);
    T_EQ_I64(entcache_capacity(c), 4, "at least one set");
    entcache_free(c);
}

static void test_too_long(void)
{
    struct entcache *c = entcache_new(16, TTL_MS);
    struct subscription sub = make_sub("u_long", "premium", SUB_STATUS_ACTIVE), got;
    struct entcache_ticket t;

    memset(sub.price_id, 'p', sizeof(sub.price_id) - 1);
    memset(sub.stripe_customer_id, 'c', sizeof(sub.stripe_customer_id) - 1);
    T_EQ_I64(entcache_get(c, "u_long", 0, &got, &t), ENTCACHE_MISS, "a miss");
    T_OK(!entcache_put(c, "u_long", &sub, &t), "ids too long for an entry: not kept");
    T_EQ_I64(lookup(c, "u_long", 1, &got), ENTCACHE_MISS, "so always read");
    entcache_free(c);
}

/* Readers, writers and clears at once: for TSan (make check), and no entry torn. */
struct hammer {
    struct entcache *c;
    int id;
    int torn;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    struct subscription sub, got;
    char user[32];

    for (int i = 0; i < 20000; i++) {
        struct entcache_ticket t;

        (void)snprintf(user, sizeof(user), "u_h%d", i % 37);
        if (h->id == 0 && i % 100 == 0) {
            entcache_invalidate(h->c, user);
            continue;
        }
        if (h->id == 1 && i % 5000 == 0)
            entcache_clear(h->c);
        switch (entcache_get(h->c, user, i, &got, &t)) {
        case ENTCACHE_SUB:
            h->torn += strcmp(got.user_id, user) != 0 || strcmp(got.tier, "plus") != 0;
            break;
        case ENTCACHE_NONE:
            break;
        case ENTCACHE_MISS:
            sub = make_sub(user, "plus", SUB_STATUS_ACTIVE);
            (void)entcache_put(h->c, user, i % 2 ? &sub : NULL, &t);
            break;
        }
    }
    return NULL;
}

static void test_threads(void)
{
    struct entcache *c = entcache_new(64, 50);
    struct hammer h[4];
    pthread_t th[4];
    int torn = 0;

    for (int i = 0; i < 4; i++) {
        h[i] = (struct hammer){ c, i, 0 };
        pthread_create(&th[i], NULL, hammer_main, &h[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        torn += h[i].torn;
    }
    T_EQ_I64(torn, 0, "4 threads: every hit is the user's own, whole");
    entcache_free(c);
}

/* Resident pages of this process, from /proc/self/statm; -1 when unreadable. */
static long resident_pages(void)
{
    long size = 0, resident = -1;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f && fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = -1;
    if (f)
        fclose(f);
    return resident;
}

/*
 * A clear (the PostgreSQL listener clears at every connect) must not write the whole table:
 * 65,536 users' worth is ~26 MB, and a loop over it made every page resident (peak RSS 37 MiB
 * where the target is 16).
 */
static void test_clear_touches_nothing(void)
{
    long before = resident_pages(), after;
    struct entcache *c = entcache_new(65536, 1000);
    struct entcache_ticket t;
    struct subscription sub;

    entcache_clear(c);
    entcache_clear(c);
    after = resident_pages();
    T_OK(before > 0 && after - before < 1024,
         "two clears of a 65,536-user cache: %ld pages resident more", after - before);
    T_EQ_I64(entcache_get(c, "nobody", 0, &sub, &t), ENTCACHE_MISS, "empty after the clears");
    entcache_free(c);
}

/*
 * A few users make resident about their own entries, side by side, not a page of the table each
 * (their sets are spread by hash over a 65,536-user table: 6.4 MiB of entries).
 */
static void test_few_users_few_pages(void)
{
    struct entcache *c = entcache_new(65536, TTL_MS);
    struct entcache_ticket t;
    struct subscription sub;
    char id[32];
    long before, after;
    int hits = 0;

    (void)entcache_get(c, "warm", 0, &sub, &t); /* the shards' locks touched first */
    before = resident_pages();
    for (int i = 0; i < 128; i++) {
        (void)snprintf(id, sizeof(id), "bench_user_%d", i);
        sub = make_sub(id, "premium", SUB_STATUS_ACTIVE);
        if (entcache_get(c, id, 0, &sub, &t) == ENTCACHE_MISS)
            (void)entcache_put(c, id, &sub, &t);
    }
    after = resident_pages();
    T_OK(after - before < 90, "128 users: %ld pages resident more (a page each would be 128)",
         after - before);
    for (int i = 0; i < 128; i++) {
        (void)snprintf(id, sizeof(id), "bench_user_%d", i);
        hits += entcache_get(c, id, 1, &sub, &t) == ENTCACHE_SUB && strcmp(sub.user_id, id) == 0;
    }
    T_EQ_I64(hits, 128, "each of them a hit");
    entcache_free(c);
}

/*
 * Values of bytes (the usage counters' cache): what was put comes back byte for byte, a write
 * drops it and refuses a read begun before it, a hit hands a ticket too (the reader may want
 * other windows), and a value that does not fit is not kept.
 */
static void test_values(void)
{
    struct entcache *c = entcache_new(16, TTL_MS);
    const char value[] = "ai_minutes\0\1\2\3\4\5\6\7\x08";
    char got[ENTCACHE_DATA_MAX], big[ENTCACHE_DATA_MAX];
    struct entcache_ticket t, late;
    size_t len = 99;

    T_OK(!entcache_get_value(c, "u_v", 0, got, &len, &t) && len == 0, "a miss first");
    T_OK(entcache_put_value(c, "u_v", value, sizeof(value), &t), "kept");
    T_OK(entcache_get_value(c, "u_v", 10, got, &len, &late), "a hit");
    T_OK(len == sizeof(value) && memcmp(got, value, len) == 0, "the same %zu bytes", len);
    T_OK(entcache_put_value(c, "u_v", "x", 1, &late), "a hit's ticket can put");
    T_OK(entcache_get_value(c, "u_v", 20, got, &len, &t) && len == 1 && got[0] == 'x',
         "the value put after the hit");
    entcache_invalidate(c, "u_v");
    T_OK(!entcache_get_value(c, "u_v", 30, got, &len, &late), "dropped by a write");
    T_OK(!entcache_put_value(c, "u_v", value, sizeof(value), &t),
         "a read begun before the write is not kept");
    T_OK(!entcache_get_value(c, "u_v", TTL_MS, got, &len, &t), "still nothing");
    T_OK(entcache_put_value(c, "u_v", value, sizeof(value), &late), "a read begun after it is");
    T_OK(!entcache_get_value(c, "u_v", 30 + TTL_MS, got, &len, &t), "expired a TTL after its read");
    memset(big, 'b', sizeof(big));
    T_OK(!entcache_put_value(c, "u_v", big, sizeof(big) - 3, &t),
         "a value that does not fit beside the id is not kept");
    T_OK(entcache_put_value(c, "u_v", big, sizeof(big) - 4, &t), "one that just fits is");
    T_OK(entcache_get_value(c, "u_v", 40 + TTL_MS, got, &len, &t) && len == sizeof(big) - 4 &&
             memcmp(got, big, len) == 0,
         "and comes back whole");
    entcache_free(c);
}

int main(void)
{
    test_hit_miss();
    test_invalidate();
    test_ttl();
    test_read_write_race();
    test_capacity();
    test_too_long();
    test_threads();
    test_clear_touches_nothing();
    test_few_users_few_pages();
    test_values();
    return t_done();
}
