/* errors.h: the one table from enum err to HTTP status, Stripe error type and default code. */
#ifndef SUBGATE_HTTP_ERRORS_H
#define SUBGATE_HTTP_ERRORS_H

#include "base/err.h"

struct err_http {
    int status;
    const char *type; /* Stripe's error "type" */
    const char *code; /* default "code" when the handler gave none */
};

/* Never NULL: an unknown value maps to 500 api_error. */
const struct err_http *err_http(enum err e);

#endif /* SUBGATE_HTTP_ERRORS_H */
