/* pool.c: the connection pool both backends lend from (see pool.h). */
#include "store/pool.h"

#include <assert.h>
#include <stdlib.h>

#include "base/xalloc.h"

int store_pool_size(int n)
{
    return n < 1 ? 1 : n > STORE_POOL_MAX ? STORE_POOL_MAX : n;
}

void store_pool_init(struct store_pool *p, int size)
{
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->given, NULL);
    p->size = store_pool_size(size);
    p->idle = xcalloc((size_t)p->size, sizeof(*p->idle));
    p->nidle = 0;
}

void store_pool_release(struct store_pool *p)
{
    pthread_cond_destroy(&p->given);
    pthread_mutex_destroy(&p->mu);
    free(p->idle);
    p->idle = NULL;
}

void *store_pool_take(struct store_pool *p)
{
    void *conn;

    pthread_mutex_lock(&p->mu);
    while (p->nidle == 0)
        pthread_cond_wait(&p->given, &p->mu);
    conn = p->idle[--p->nidle];
    pthread_mutex_unlock(&p->mu);
    return conn;
}

void store_pool_give(struct store_pool *p, void *conn)
{
    pthread_mutex_lock(&p->mu);
    assert(p->nidle < p->size);
    p->idle[p->nidle++] = conn;
    pthread_cond_signal(&p->given);
    pthread_mutex_unlock(&p->mu);
}
