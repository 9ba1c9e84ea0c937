/* handlers.h: the route handlers, grouped by file; only routes.c refers to them. */
#ifndef SUBGATE_API_HANDLERS_H
#define SUBGATE_API_HANDLERS_H

#include "base/err.h"
#include "http/request.h"

/* ops.c */
enum err ops_healthz(struct request *req, struct response *resp);
enum err ops_readyz(struct request *req, struct response *resp);
enum err ops_metrics(struct request *req, struct response *resp);
enum err ops_openapi(struct request *req, struct response *resp);

/* payments.c */
enum err payments_pricing(struct request *req, struct response *resp);
enum err payments_subscription(struct request *req, struct response *resp);
enum err payments_invoices(struct request *req, struct response *resp);
enum err payments_create_checkout_session(struct request *req, struct response *resp);
enum err payments_customer_portal(struct request *req, struct response *resp);
enum err payments_cancel_subscription(struct request *req, struct response *resp);
enum err payments_checkout_success(struct request *req, struct response *resp);

/* webhook.c */
enum err payments_webhook(struct request *req, struct response *resp);

/* access.c */
enum err access_usage(struct request *req, struct response *resp);
enum err access_check(struct request *req, struct response *resp);
enum err access_consume(struct request *req, struct response *resp);
enum err access_track(struct request *req, struct response *resp);
enum err access_refund(struct request *req, struct response *resp);
enum err access_usage_read(struct request *req, struct response *resp);
enum err access_gate(struct request *req, struct response *resp);

#endif /* SUBGATE_API_HANDLERS_H */
