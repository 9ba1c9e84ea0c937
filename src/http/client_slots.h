/*
 * client_slots.h: how many slow requests (queued or running on the Stripe pool) each client has
 * in flight, so that one client, however many connections it opens, cannot fill the pool's
 * queue for everybody else (SPEC §8). A client is a key the caller gives (subgate's: the user
 * a verified token names), hashed with a key random per process: the key itself is not stored.
 */
#ifndef SUBGATE_HTTP_CLIENT_SLOTS_H
#define SUBGATE_HTTP_CLIENT_SLOTS_H

#include <stdbool.h>
#include <stddef.h>

struct client_slots; /* opaque */

/*
 * A table of buckets (>= 1) counters, each allowing per_client_max (>= 1) requests in flight.
 * Memory is fixed whatever the number of distinct clients: keys whose hashes share a
 * bucket share its count, which only refuses them sooner. Free with client_slots_free.
 */
struct client_slots *client_slots_new(int buckets, int per_client_max);

/*
 * Takes a slot for the client sending key (len bytes; len 0 for a request without one: all of
 * those share one bucket). True, with the bucket to give back in *bucket, when the client had
 * fewer than per_client_max in flight; false (nothing taken) otherwise. Thread-safe.
 */
bool client_slots_take(struct client_slots *cs, const char *key, size_t len, unsigned int *bucket);

/* Gives back a slot that client_slots_take took. Thread-safe. */
void client_slots_give(struct client_slots *cs, unsigned int bucket);

/* Requests in flight in bucket (for tests). */
int client_slots_count(struct client_slots *cs, unsigned int bucket);

/* Frees cs. NULL is a no-op. */
void client_slots_free(struct client_slots *cs);

#endif /* SUBGATE_HTTP_CLIENT_SLOTS_H */
