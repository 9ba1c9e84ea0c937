/*
 * entcache.h: the entitlement cache (issue #13 item 1): each user's subscription as
 * store_subscription_get_for_user reads it (or that there is none), kept in memory for a bounded
 * time. store.c owns one per store, and a second that holds the usage counters
 * (entcache_get_value); nothing outside store/ includes this header.
 *
 * Memory is bounded and taken once: users entries (rounded up to a multiple of ENTCACHE_WAYS),
 * in ENTCACHE_SHARDS shards, each behind its own mutex. A hit copies the entry out under the
 * shard's lock and allocates nothing.
 *
 * Staleness: an entry is dropped at once by entcache_invalidate (this process's writes, after
 * they commit; another instance's, told by a notification) and expires ttl_ms after the read
 * that filled it began, so a change made where no one tells us is seen within ttl_ms.
 *
 * The race of a read with a write: a reader takes a ticket (its shard's write generation) in
 * entcache_get before it reads the database, and entcache_put refuses the value when a write has
 * invalidated that shard since, so a value read before a write committed is never kept after
 * the write's invalidation.
 */
#ifndef SUBGATE_STORE_ENTCACHE_H
#define SUBGATE_STORE_ENTCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "billing/records.h"

#define ENTCACHE_WAYS   4  /* entries per set: a set is searched whole, its oldest evicted */
#define ENTCACHE_SHARDS 64 /* locks, at the most: fewer when there are fewer sets */
/* An entry's bytes: the user id and its NUL, then the subscription's fields or the value */
#define ENTCACHE_DATA_MAX 360

struct entcache;

/* What entcache_get found. */
enum entcache_result {
    ENTCACHE_MISS, /* nothing fresh: read the database, then entcache_put with the ticket */
    ENTCACHE_SUB,  /* the user's subscription, copied to *out */
    ENTCACHE_NONE, /* the user has no subscription */
};

/* Taken by a miss, before the database is read; handed back to entcache_put. */
struct entcache_ticket {
    uint64_t gen;     /* the shard's write generation when the read began */
    int64_t start_ms; /* when the read began: the entry expires ttl_ms after it */
};

/*
 * A cache of users entries (1 or more) whose entries live ttl_ms (1 or more). Free it with
 * entcache_free().
 */
struct entcache *entcache_new(size_t users, int64_t ttl_ms);
void entcache_free(struct entcache *c);

/*
 * Looks user_id up at now_ms (monotonic milliseconds). On ENTCACHE_SUB *out is the subscription;
 * on ENTCACHE_MISS *t is the ticket for the entcache_put that follows the database read.
 */
enum entcache_result entcache_get(struct entcache *c, const char *user_id, int64_t now_ms,
                                  struct subscription *out, struct entcache_ticket *t);

/*
 * Keeps what the read of ticket t found for user_id: sub, or NULL for "no subscription". False
 * when it is not kept: a write invalidated the shard after t was taken (the value may be older
 * than that write), or the subscription does not fit an entry (its ids are too long).
 */
bool entcache_put(struct entcache *c, const char *user_id, const struct subscription *sub,
                  const struct entcache_ticket *t);

/*
 * The same table holding, instead of subscriptions, a value of bytes per user, opaque here (the
 * store keeps the usage counters this way). On a hit *len bytes are copied to out, which holds
 * ENTCACHE_DATA_MAX. Either way *t is a ticket for an entcache_put_value after a database read
 * (the caller may find the value is not the one it wants). The put is refused as entcache_put's is,
 * and when the user id and the value together pass ENTCACHE_DATA_MAX.
 */
bool entcache_get_value(struct entcache *c, const char *user_id, int64_t now_ms, void *out,
                        size_t *len, struct entcache_ticket *t);
bool entcache_put_value(struct entcache *c, const char *user_id, const void *value, size_t len,
                        const struct entcache_ticket *t);

/* Drops user_id's entry and refuses the puts of tickets taken before. */
void entcache_invalidate(struct entcache *c, const char *user_id);

/* Drops every entry and refuses the puts of every ticket taken before. */
void entcache_clear(struct entcache *c);

/* How many entries the cache holds at the most. */
size_t entcache_capacity(const struct entcache *c);

#endif /* SUBGATE_STORE_ENTCACHE_H */
