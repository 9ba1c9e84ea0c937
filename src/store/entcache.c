/*
 * entcache.c: the entitlement cache (see entcache.h). A set-associative table: a user's hash
 * picks a set of ENTCACHE_WAYS entries, and the set's shard holds the lock and the write
 * generation. An entry packs the user id and the subscription's stored fields (the layout of
 * store_subscription_record) into a few hundred bytes, so a million users fit in memory.
 *
 * A set's entries are a block taken from the table, in order, the first time the set stores a
 * user: so the memory a few hundred users make resident is their blocks side by side, not a
 * page of the table each (sets are spread by hash: 800 KiB of RSS for the bench's 128 users
 * when each set had its place in the table).
 */
#include "store/entcache.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/xalloc.h"
#include "store/backend.h"

#define ENTRY_DATA ENTCACHE_DATA_MAX

struct entry {
    uint64_t hash;         /* of the user id; 0: the entry is empty */
    uint64_t epoch;        /* its shard's epoch when stored: from another one, it is empty */
    int64_t expires_ms;    /* monotonic: the entry is no longer used from then on */
    bool has_sub;          /* false: the user had no subscription (or: a value is held) */
    uint16_t len;          /* the bytes of data in use */
    char data[ENTRY_DATA]; /* the user id and its NUL, then the fields as pack() wrote them or
                              the value as entcache_put_value() was given it */
};

/* One lock and one generation for a slice of the sets, on a cache line of its own. */
struct shard {
    alignas(64) pthread_mutex_t mu;
    uint64_t gen;   /* bumped by every invalidation of a user of this shard, under mu */
    uint64_t epoch; /* bumped by a clear: empties every entry of the shard without touching it */
};

struct entcache {
    struct shard *shards;
    size_t nshards;
    struct entry *entries; /* nsets blocks of ENTCACHE_WAYS, taken in order */
    uint32_t *block_of;    /* a set's block + 1, 0 while it has none; under the set's shard's mu */
    _Atomic size_t blocks; /* taken so far: at most one per set */
    size_t nsets;
    int64_t ttl_ms;
};

/* FNV-1a, never 0 (the mark of an empty entry). */
static uint64_t user_hash(const char *user_id)
{
    uint64_t h = UINT64_C(14695981039346656037);

    for (const unsigned char *p = (const unsigned char *)user_id; *p; p++)
        h = (h ^ *p) * UINT64_C(1099511628211);
    return h ? h : 1;
}

static size_t set_of(const struct entcache *c, uint64_t hash)
{
    return (size_t)(hash % c->nsets);
}

static struct shard *shard_of(const struct entcache *c, size_t set)
{
    return &c->shards[set % c->nshards];
}

/* Whether e holds a user: stored, not dropped, and since its shard's last clear. */
static bool entry_used(const struct entcache *c, size_t set, const struct entry *e)
{
    return e->hash != 0 && e->epoch == shard_of(c, set)->epoch;
}

/* The set's entries (its shard's mu held); NULL when it has none yet and make is false. */
static struct entry *set_entries(struct entcache *c, size_t set, bool make)
{
    size_t b = c->block_of[set];

    if (b == 0) {
        if (!make)
            return NULL;
        b = atomic_fetch_add(&c->blocks, 1) + 1; /* one per set: never past nsets */
        c->block_of[set] = (uint32_t)b;
    }
    return &c->entries[(b - 1) * ENTCACHE_WAYS];
}

/* The entry of user_id in its set, or NULL. */
static struct entry *set_find(struct entcache *c, size_t set, uint64_t hash, const char *user_id)
{
    struct entry *e = set_entries(c, set, false);

    for (int w = 0; e && w < ENTCACHE_WAYS; w++)
        if (e[w].hash == hash && entry_used(c, set, &e[w]) && strcmp(e[w].data, user_id) == 0)
            return &e[w];
    return NULL;
}

/* Where a new entry goes in a set: an empty one, else the one that expires first. */
static struct entry *set_victim(struct entcache *c, size_t set)
{
    struct entry *e = set_entries(c, set, true);
    struct entry *victim = &e[0];

    for (int w = 0; w < ENTCACHE_WAYS; w++) {
        if (!entry_used(c, set, &e[w]))
            return &e[w];
        if (e[w].expires_ms < victim->expires_ms)
            victim = &e[w];
    }
    return victim;
}

/* Appends len bytes at *n of e->data; false when they do not fit. */
static bool data_append(struct entry *e, size_t *n, const void *p, size_t len)
{
    if (len > ENTRY_DATA - *n)
        return false;
    memcpy(e->data + *n, p, len);
    *n += len;
    return true;
}

/*
 * Fills e (but its expiry) with user_id and sub (NULL: none): the text fields with their NULs,
 * the others as 8 bytes, in the order of store_subscription_record. False when it does not fit.
 */
static bool pack(struct entry *e, uint64_t hash, const char *user_id,
                 const struct subscription *sub)
{
    const struct store_record *r = &store_subscription_record;
    size_t n = 0;

    e->hash = hash;
    e->has_sub = sub != NULL;
    if (!data_append(e, &n, user_id, strlen(user_id) + 1))
        return false;
    for (size_t i = 0; sub && i < r->count; i++) {
        struct store_value v = store_field_value(&r->fields[i], sub);
        bool fits = v.is_text ? data_append(e, &n, v.text, strlen(v.text) + 1)
                              : data_append(e, &n, &v.i64, sizeof(v.i64));
        if (!fits)
            return false;
    }
    e->len = (uint16_t)n;
    return true;
}

/* Fills e (but its expiry) with user_id and the len bytes of value. False when they do not fit. */
static bool pack_value(struct entry *e, uint64_t hash, const char *user_id, const void *value,
                       size_t len)
{
    size_t n = 0;

    e->hash = hash;
    e->has_sub = false;
    if (!data_append(e, &n, user_id, strlen(user_id) + 1) || !data_append(e, &n, value, len))
        return false;
    e->len = (uint16_t)n;
    return true;
}

/* The subscription e holds, as the database read it. */
static void unpack(const struct entry *e, struct subscription *out)
{
    const struct store_record *r = &store_subscription_record;
    const char *p = e->data + strlen(e->data) + 1;

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < r->count; i++) {
        const struct store_field *f = &r->fields[i];
        int64_t v;

        if (f->kind == FIELD_TEXT || f->kind == FIELD_SUB_STATUS) {
            (void)store_field_from_text(f, out, p); /* packed from such a field: it fits */
            p += strlen(p) + 1;
            continue;
        }
        memcpy(&v, p, sizeof(v));
        store_field_from_i64(f, out, v);
        p += sizeof(v);
    }
}

struct entcache *entcache_new(size_t users, int64_t ttl_ms)
{
    struct entcache *c = xcalloc(1, sizeof(*c));

    c->nsets = users / ENTCACHE_WAYS + (users % ENTCACHE_WAYS != 0);
    if (!c->nsets)
        c->nsets = 1;
    c->nshards = c->nsets < ENTCACHE_SHARDS ? c->nsets : ENTCACHE_SHARDS;
    c->ttl_ms = ttl_ms;
    c->entries = xcalloc(c->nsets * ENTCACHE_WAYS, sizeof(*c->entries)); /* zero: empty */
    c->block_of = xcalloc(c->nsets, sizeof(*c->block_of));
    /* aligned as struct shard asks (a cache line each): calloc's 16 bytes are not enough */
    c->shards = aligned_alloc(alignof(struct shard), c->nshards * sizeof(*c->shards));
    if (!c->shards)
        abort(); /* out of memory, as xalloc does */
    memset(c->shards, 0, c->nshards * sizeof(*c->shards));
    for (size_t i = 0; i < c->nshards; i++)
        pthread_mutex_init(&c->shards[i].mu, NULL);
    return c;
}

void entcache_free(struct entcache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nshards; i++)
        pthread_mutex_destroy(&c->shards[i].mu);
    free(c->shards);
    free(c->block_of);
    free(c->entries);
    free(c);
}

size_t entcache_capacity(const struct entcache *c)
{
    return c->nsets * ENTCACHE_WAYS;
}

/*
 * Copies user_id's entry, fresh at now_ms, to *copy; else drops an expired one. Takes a ticket
 * either way (a value's reader may find the entry is not what it wants).
 */
static bool lookup(struct entcache *c, const char *user_id, int64_t now_ms, struct entry *copy,
                   struct entcache_ticket *t)
{
    uint64_t hash = user_hash(user_id);
    size_t set = set_of(c, hash);
    struct shard *s = shard_of(c, set);
    struct entry *e;
    bool hit;

    pthread_mutex_lock(&s->mu);
    t->gen = s->gen;
    t->start_ms = now_ms;
    e = set_find(c, set, hash, user_id);
    hit = e && now_ms < e->expires_ms;
    if (hit)
        memcpy(copy, e, offsetof(struct entry, data) + e->len);
    else if (e)
        e->hash = 0; /* expired */
    pthread_mutex_unlock(&s->mu);
    return hit;
}

/* Stores packed (but its expiry and epoch) for its user, unless a write since t forbids it. */
static bool keep(struct entcache *c, const char *user_id, struct entry *packed,
                 const struct entcache_ticket *t)
{
    size_t set = set_of(c, packed->hash);
    struct shard *s = shard_of(c, set);
    struct entry *e;

    packed->expires_ms = t->start_ms + c->ttl_ms;
    pthread_mutex_lock(&s->mu);
    packed->epoch = s->epoch;
    if (s->gen != t->gen) {
        pthread_mutex_unlock(&s->mu); /* a write since the read began: the value may predate it */
        return false;
    }
    e = set_find(c, set, packed->hash, user_id);
    if (!e)
        e = set_victim(c, set);
    memcpy(e, packed, offsetof(struct entry, data) + packed->len);
    pthread_mutex_unlock(&s->mu);
    return true;
}

enum entcache_result entcache_get(struct entcache *c, const char *user_id, int64_t now_ms,
                                  struct subscription *out, struct entcache_ticket *t)
{
    struct entry copy;

    if (!lookup(c, user_id, now_ms, &copy, t))
        return ENTCACHE_MISS;
    if (!copy.has_sub)
        return ENTCACHE_NONE;
    unpack(&copy, out);
    return ENTCACHE_SUB;
}

bool entcache_put(struct entcache *c, const char *user_id, const struct subscription *sub,
                  const struct entcache_ticket *t)
{
    struct entry packed;

    return pack(&packed, user_hash(user_id), user_id, sub) && keep(c, user_id, &packed, t);
}

bool entcache_get_value(struct entcache *c, const char *user_id, int64_t now_ms, void *out,
                        size_t *len, struct entcache_ticket *t)
{
    struct entry copy;
    size_t at;

    *len = 0;
    if (!lookup(c, user_id, now_ms, &copy, t))
        return false;
    at = strlen(copy.data) + 1;
    *len = copy.len - at;
    memcpy(out, copy.data + at, *len);
    return true;
}

bool entcache_put_value(struct entcache *c, const char *user_id, const void *value, size_t len,
                        const struct entcache_ticket *t)
{
    struct entry packed;

    return pack_value(&packed, user_hash(user_id), user_id, value, len) &&
           keep(c, user_id, &packed, t);
}

void entcache_invalidate(struct entcache *c, const char *user_id)
{
    uint64_t hash = user_hash(user_id);
    size_t set = set_of(c, hash);
    struct shard *s = shard_of(c, set);
    struct entry *e;

    pthread_mutex_lock(&s->mu);
    s->gen++;
    e = set_find(c, set, hash, user_id);
    if (e)
        e->hash = 0;
    pthread_mutex_unlock(&s->mu);
}

void entcache_clear(struct entcache *c)
{
    for (size_t i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];

        /* a new epoch empties the shard's entries without writing them: a table never used
         * stays untouched memory (a loop over it would make all of it resident) */
        pthread_mutex_lock(&s->mu);
        s->gen++;
        s->epoch++;
        pthread_mutex_unlock(&s->mu);
    }
}
