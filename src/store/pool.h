/*
 * pool.h: a fixed set of connections lent to one thread at a time, last in first out (the
 * connection used last has the warmest caches). Both backends keep theirs in one.
 */
#ifndef SUBGATE_STORE_POOL_H
#define SUBGATE_STORE_POOL_H

#include <pthread.h>

#define STORE_POOL_MAX 64 /* connections at the most, whatever is asked */

struct store_pool {
    pthread_mutex_t mu;
    pthread_cond_t given; /* signalled when a connection comes back */
    void **idle;          /* a stack of idle connections, guarded by mu */
    int nidle;
    int size;
};

/* The pool size for a request of n connections: 1 to STORE_POOL_MAX. */
int store_pool_size(int n);

/* An empty pool with room for size connections; give them with store_pool_give. */
void store_pool_init(struct store_pool *p, int size);

/* Frees the pool itself (the connections are the backend's). */
void store_pool_release(struct store_pool *p);

/* Takes an idle connection, waiting for one when all are lent. */
void *store_pool_take(struct store_pool *p);

/* Gives a connection (back) to the pool. */
void store_pool_give(struct store_pool *p, void *conn);

#endif /* SUBGATE_STORE_POOL_H */
