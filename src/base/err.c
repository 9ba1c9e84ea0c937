/* err.c: names of error codes, for logs and tests. */
#include "base/err.h"

const char *err_name(enum err e)
{
    switch (e) {
    case ERR_OK:
        return "ok";
    case ERR_INVALID:
        return "invalid";
    case ERR_UNAUTHORIZED:
        return "unauthorized";
    case ERR_FORBIDDEN:
        return "forbidden";
    case ERR_NOT_FOUND:
        return "not_found";
    case ERR_METHOD:
        return "method_not_allowed";
    case ERR_CONFLICT:
        return "conflict";
    case ERR_QUOTA:
        return "quota";
    case ERR_TOO_LARGE:
        return "too_large";
    case ERR_MEDIA_TYPE:
        return "media_type";
    case ERR_RATE_LIMITED:
        return "rate_limited";
    case ERR_UPSTREAM:
        return "upstream";
    case ERR_REFUSED:
        return "refused";
    case ERR_UNAVAILABLE:
        return "unavailable";
    case ERR_STORE:
        return "store";
    case ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}
