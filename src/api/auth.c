/* auth.c: bearer credentials: user JWTs and service keys. Tokens are never logged. */
#include "api/auth.h"

#include <string.h>

#include "auth/jwt.h"
#include "auth/service_key.h"
#include "base/clock.h"
#include "base/str.h"

#define CHALLENGE "Bearer realm=\"subgate\""

/* Finds the credential of "Authorization: Bearer <credential>". */
static enum err bearer(struct request *req, const char **cred, size_t *len)
{
    const char *h = request_header(req, "Authorization");
    size_t n;

    if (!h || !*h)
        return request_fail(req, ERR_UNAUTHORIZED, "missing_credentials", NULL,
                            "missing Authorization: Bearer header");
    if (strlen(h) < 7 || !str_eq_nocase(h, 7, "bearer "))
        return request_fail(req, ERR_UNAUTHORIZED, "invalid_credentials", NULL,
                            "the Authorization header must use the Bearer scheme");
    *cred = h + 7;
    n = strlen(*cred);
    str_trim(cred, &n);
    if (n == 0)
        return request_fail(req, ERR_UNAUTHORIZED, "missing_credentials", NULL,
                            "empty bearer credential");
    *len = n;
    return ERR_OK;
}

static enum err authenticate_user(struct request *req, const struct api *api)
{
    struct jwt_claims claims;
    const char *tok = NULL, *why = "invalid token";
    size_t len = 0;
    enum err err = bearer(req, &tok, &len);

    if (err)
        return err;
    if (jwt_verify(api->jwt, tok, len, clock_now(), &claims, &why) != ERR_OK)
        return request_fail(req, ERR_UNAUTHORIZED, "invalid_token", NULL, "%s", why);
    str_copy(req->user, sizeof(req->user), claims.sub);
    str_copy(req->user_email, sizeof(req->user_email), claims.email);
    return ERR_OK;
}

static enum err authenticate_service(struct request *req, const struct api *api)
{
    const char *key = NULL;
    size_t len = 0;
    enum err err = bearer(req, &key, &len);

    if (err)
        return err;
    if (!api->service_keys || !service_keys_match(api->service_keys, key, len))
        return request_fail(req, ERR_UNAUTHORIZED, "invalid_credentials", NULL,
                            "invalid service key");
    return ERR_OK;
}

/* A service key first, else a user token; a service leaves req->user "". */
static enum err authenticate_either(struct request *req, const struct api *api)
{
    const char *cred = NULL;
    size_t len = 0;
    enum err err = bearer(req, &cred, &len);

    if (err)
        return err;
    if (api->service_keys && service_keys_match(api->service_keys, cred, len))
        return ERR_OK;
    return authenticate_user(req, api);
}

enum err api_authenticate(struct request *req, enum auth_kind k)
{
    const struct api *api = req->app;

    switch (k) {
    case AUTH_NONE:
    case AUTH_STRIPE: /* the handler verifies the signature over the raw body */
        return ERR_OK;
    case AUTH_USER:
        return authenticate_user(req, api);
    case AUTH_SERVICE:
        return authenticate_service(req, api);
    case AUTH_USER_OR_SERVICE:
        return authenticate_either(req, api);
    }
    return request_fail(req, ERR_INTERNAL, NULL, NULL, "unknown auth kind");
}

bool api_bearer_credential(const struct request *req, const char **cred, size_t *len)
{
    const char *h = request_header(req, "Authorization");

    if (!h || strlen(h) < 7 || !str_eq_nocase(h, 7, "bearer "))
        return false;
    *cred = h + 7;
    *len = strlen(*cred);
    str_trim(cred, len);
    return *len > 0;
}

/* True when the request's Authorization header is "Bearer <credential>" with a credential. */
static bool sent_bearer(const struct request *req)
{
    const char *cred;
    size_t n;

    return api_bearer_credential(req, &cred, &n);
}

void api_auth_challenge(const struct request *req, struct response *resp)
{
    if (resp->status != 401)
        return;
    /* constants: never refused */
    (void)response_add_header(resp, "WWW-Authenticate",
                              sent_bearer(req) ? CHALLENGE ", error=\"invalid_token\"" : CHALLENGE);
}
