/* handlers.h: the route handlers, grouped by file; only routes.c refers to them. */
#ifndef SUBGATE_API_HANDLERS_H
#define SUBGATE_API_HANDLERS_H

#include "base/err.h"
#include "http/request.h"

/* ops.c */
enum err ops_healthz(struct request *req, struct response *resp);
enum err ops_readyz(struct request *req, struct response *resp);

/* payments.c */
enum err payments_pricing(struct request *req, struct response *resp);
enum err payments_subscription(struct request *req, struct response *resp);
enum err payments_invoices(struct request *req, struct response *resp);
enum err payments_create_checkout_session(struct request *req, struct response *resp);
enum err payments_customer_portal(struct request *req, struct response *resp);
enum err payments_cancel_subscription(struct request *req, struct response *resp);

#endif /* SUBGATE_API_HANDLERS_H */
