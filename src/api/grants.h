/*
 * grants.h: tiers granted outside Stripe (issue #15): the effective tier every read uses, and
 * the service routes that grant, list and revoke (grants.c).
 */
#ifndef SUBGATE_API_GRANTS_H
#define SUBGATE_API_GRANTS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "base/base.h"
#include "base/err.h"
#include "billing/records.h"
#include "billing/tiers.h"

struct api;

/*
 * Raises *tier (the tier Stripe's subscription grants, or the default) to the best grant of user
 * in force at now when that ranks higher: then *granted is true and *grant is it. Grants made by
 * another process show within ENTITLEMENT_CACHE_TTL_MS (at once with the cache off).
 */
MUST_CHECK enum err grants_effective_tier(const struct api *api, const char *user, int64_t now,
                                          const struct tier **tier, struct grant_record *grant,
                                          bool *granted);

/* A grant as the API shows it, with "active" at now. A new reference. */
json_t *grants_json(const struct grant_record *g, int64_t now);

#endif /* SUBGATE_API_GRANTS_H */
