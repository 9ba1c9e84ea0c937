/*
 * errors.c: enum err -> HTTP. Types follow the classes of Stripe's SDKs (invalid_request_error,
 * authentication_error, permission_error, rate_limit_error, api_error).
 */
#include "http/errors.h"

#include <stddef.h>

static const struct err_http table[] = {
    [ERR_OK] = { 200, "", "" },
    [ERR_INVALID] = { 400, "invalid_request_error", "parameter_invalid" },
    [ERR_UNAUTHORIZED] = { 401, "authentication_error", "unauthorized" },
    [ERR_FORBIDDEN] = { 403, "permission_error", "forbidden" },
    [ERR_NOT_FOUND] = { 404, "invalid_request_error", "resource_missing" },
    [ERR_METHOD] = { 405, "invalid_request_error", "method_not_allowed" },
    [ERR_CONFLICT] = { 409, "invalid_request_error", "resource_conflict" },
    [ERR_QUOTA] = { 402, "invalid_request_error", "quota_exceeded" },
    [ERR_TOO_LARGE] = { 413, "invalid_request_error", "body_too_large" },
    [ERR_MEDIA_TYPE] = { 415, "invalid_request_error", "unsupported_media_type" },
    [ERR_RATE_LIMITED] = { 429, "rate_limit_error", "rate_limited" },
    [ERR_UPSTREAM] = { 502, "api_error", "upstream_error" },
    /*
     * Stripe refused for its object's state; callers that expect it handle it. Unhandled, it is
     * told as what it was before it had a name of its own: Stripe's failure.
     */
    [ERR_REFUSED] = { 502, "api_error", "upstream_error" },
    [ERR_UNAVAILABLE] = { 503, "api_error", "service_unavailable" },
    [ERR_STORE] = { 500, "api_error", "storage_error" },
    [ERR_INTERNAL] = { 500, "api_error", "internal_error" },
};

const struct err_http *err_http(enum err e)
{
    if ((size_t)e >= sizeof(table) / sizeof(table[0]) || e == ERR_OK)
        return &table[ERR_INTERNAL];
    return &table[e];
}
