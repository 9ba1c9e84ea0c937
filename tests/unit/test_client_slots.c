/* test_client_slots.c: the per-client count of slow requests in flight (http/client_slots.h). */
#include <pthread.h>
#include <string.h>

#include "http/client_slots.h"
#include "t.h"

#define TOKEN_A "eyJhbGciOiJIUzI1NiJ9.a.sig"
#define TOKEN_B "eyJhbGciOiJIUzI1NiJ9.b.sig"

/* One client takes its cap, is refused past it, and may take again once a slot is given back. */
static void test_cap_and_release(void)
{
    struct client_slots *cs = client_slots_new(1024, 3);
    unsigned int b[4], again;

    for (int i = 0; i < 3; i++)
        T_OK(client_slots_take(cs, TOKEN_A, strlen(TOKEN_A), &b[i]), "slot %d of 3 taken", i + 1);
    T_OK(b[0] == b[1] && b[1] == b[2], "one credential, one bucket");
    T_OK(!client_slots_take(cs, TOKEN_A, strlen(TOKEN_A), &b[3]), "the fourth is refused");
    T_EQ_I64(client_slots_count(cs, b[0]), 3, "a refusal takes nothing");
    client_slots_give(cs, b[1]);
    T_OK(client_slots_take(cs, TOKEN_A, strlen(TOKEN_A), &again), "taken again after a release");
    T_EQ_I64(again, b[0], "in the same bucket");
    for (int i = 0; i < 3; i++)
        client_slots_give(cs, b[0]);
    T_EQ_I64(client_slots_count(cs, b[0]), 0, "all given back");
    client_slots_free(cs);
}

/* With one bucket every credential collides: they share the count (refused sooner, never later). */
static void test_collisions_share(void)
{
    struct client_slots *cs = client_slots_new(1, 2);
    unsigned int a, b, c;

    T_OK(client_slots_take(cs, TOKEN_A, strlen(TOKEN_A), &a), "A takes one");
    T_OK(client_slots_take(cs, TOKEN_B, strlen(TOKEN_B), &b), "B takes one");
    T_OK(!client_slots_take(cs, "", 0, &c), "no credential: refused, the shared bucket is full");
    client_slots_give(cs, a);
    client_slots_give(cs, b);
    client_slots_free(cs);
}

/* A full client does not stop another, unless their credentials share a bucket (1 in 65536). */
static void test_others_unaffected(void)
{
    struct client_slots *cs = client_slots_new(1 << 16, 1);
    unsigned int a, b, none, x;
    bool b_taken, none_taken;

    T_OK(client_slots_take(cs, TOKEN_A, strlen(TOKEN_A), &a), "A takes its one");
    T_OK(!client_slots_take(cs, TOKEN_A, strlen(TOKEN_A), &x), "A is full");
    b_taken = client_slots_take(cs, TOKEN_B, strlen(TOKEN_B), &b);
    T_OK(b_taken || b == a, "B still takes one");
    none_taken = client_slots_take(cs, NULL, 0, &none);
    T_OK(none_taken || none == a || none == b, "a request without a credential takes one");
    client_slots_free(cs);
}

struct hammer {
    struct client_slots *cs;
    int taken;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    unsigned int b;

    for (int i = 0; i < 20000; i++) {
        if (!client_slots_take(h->cs, TOKEN_A, strlen(TOKEN_A), &b))
            continue;
        h->taken++;
        client_slots_give(h->cs, b);
    }
    return NULL;
}

/* Threads taking and giving back concurrently leave the count at zero. */
static void test_threads(void)
{
    struct client_slots *cs = client_slots_new(64, 2);
    struct hammer h[4];
    pthread_t t[4];
    unsigned int b;

    for (int i = 0; i < 4; i++) {
        h[i] = (struct hammer){ cs, 0 };
        pthread_create(&t[i], NULL, hammer_main, &h[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    T_OK(client_slots_take(cs, TOKEN_A, strlen(TOKEN_A), &b), "taken after the threads");
    T_EQ_I64(client_slots_count(cs, b), 1, "every slot the threads took was given back");
    T_OK(h[0].taken > 0, "the threads took slots");
    client_slots_free(cs);
}

int main(void)
{
    test_cap_and_release();
    test_collisions_share();
    test_others_unaffected();
    test_threads();
    return t_done();
}
