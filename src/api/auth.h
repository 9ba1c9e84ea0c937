/* auth.h: authenticating the caller of a route by its kind (SPEC §2). */
#ifndef SUBGATE_API_AUTH_H
#define SUBGATE_API_AUTH_H

#include "api/api.h"
#include "base/base.h"
#include "base/err.h"

/*
 * Checks the request's credentials for a route of kind k. A user's id and email land in
 * req->user and req->user_email. ERR_UNAUTHORIZED (detail recorded) otherwise.
 */
MUST_CHECK enum err api_authenticate(struct request *req, enum auth_kind k);

/*
 * The credential of the request's "Authorization: Bearer <credential>" header (the scheme in
 * any case, spaces around the credential trimmed), pointing into the header: the same
 * credential however a client spells the header. False without one.
 */
bool api_bearer_credential(const struct request *req, const char **cred, size_t *len);

/*
 * Adds the challenge every 401 answer carries (RFC 6750 section 3): `Bearer realm="subgate"`,
 * with `error="invalid_token"` when the request sent a bearer credential that was refused
 * (bad, expired, an unknown service key). Called once for every answer by api_dispatch.
 */
void api_auth_challenge(const struct request *req, struct response *resp);

#endif /* SUBGATE_API_AUTH_H */
