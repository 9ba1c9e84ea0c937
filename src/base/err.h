/* err.h: the one error vocabulary; zero is success. http/errors.c maps it to HTTP. */
#ifndef SUBGATE_BASE_ERR_H
#define SUBGATE_BASE_ERR_H

enum err {
    ERR_OK = 0,
    ERR_INVALID,      /* bad input from a caller: 400 */
    ERR_UNAUTHORIZED, /* no or bad credentials: 401 */
    ERR_FORBIDDEN,    /* credentials fine, not allowed: 403 */
    ERR_NOT_FOUND,    /* 404 */
    ERR_METHOD,       /* route exists, method does not: 405 */
    ERR_CONFLICT,     /* 409 */
    ERR_QUOTA,        /* quota or tier refusal: 402 */
    ERR_TOO_LARGE,    /* a capped buffer overflowed: 413 */
    ERR_MEDIA_TYPE,   /* wrong Content-Type: 415 */
    ERR_RATE_LIMITED, /* 429 */
    ERR_UPSTREAM,     /* Stripe failed or answered nonsense: 502 */
    ERR_REFUSED,      /* the other side refused the request for its state or parameters: 502 */
    ERR_UNAVAILABLE,  /* a dependency is not configured or down: 503 */
    ERR_STORE,        /* database failure: 500 */
    ERR_INTERNAL,     /* our bug: 500 */
};

/* Returns a short static name for logs ("invalid", "store"...). */
const char *err_name(enum err e);

#endif /* SUBGATE_BASE_ERR_H */
