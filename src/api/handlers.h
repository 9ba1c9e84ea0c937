/* handlers.h: the route handlers, grouped by file; only routes.c refers to them. */
#ifndef SUBGATE_API_HANDLERS_H
#define SUBGATE_API_HANDLERS_H

#include <jansson.h>

#include "base/err.h"
#include "billing/records.h"
#include "http/request.h"
#include "stripe/client.h"
#include "stripe/objects.h"

/* ops.c */
enum err ops_healthz(struct request *req, struct response *resp);
enum err ops_readyz(struct request *req, struct response *resp);
enum err ops_metrics(struct request *req, struct response *resp);
enum err ops_openapi(struct request *req, struct response *resp);

/* page.c: the billing page (api/page.h) */
enum err page_file(struct request *req, struct response *resp);
enum err page_redirect(struct request *req, struct response *resp);

/* payments.c */
enum err payments_pricing(struct request *req, struct response *resp);
enum err payments_subscription(struct request *req, struct response *resp);
enum err payments_invoices(struct request *req, struct response *resp);
enum err payments_create_checkout_session(struct request *req, struct response *resp);
enum err payments_customer_portal(struct request *req, struct response *resp);
enum err payments_cancel_subscription(struct request *req, struct response *resp);
enum err payments_checkout_success(struct request *req, struct response *resp);
enum err payments_change_plan(struct request *req, struct response *resp);

/* grants.c */
enum err access_grant_create(struct request *req, struct response *resp);
enum err access_grant_list(struct request *req, struct response *resp);
enum err access_grant_revoke(struct request *req, struct response *resp);

enum err payments_preview_plan_change(struct request *req, struct response *resp);
enum err payments_cancel_plan_change(struct request *req, struct response *resp);
enum err payments_resume_subscription(struct request *req, struct response *resp);

/*
 * Shared by payments.c and plans.c. payments_stripe_of: the Stripe client, or 503 when
 * STRIPE_SECRET_KEY is not set. payments_store_answer: stores a subscription as Stripe just
 * answered it (se: that call's) for the user, or fails the request. payments_check_answer: the
 * same without storing (a read, which a concurrent change may already have overtaken: only the
 * answers of changes are stored), completing sub (its tier). payments_subscription_answer:
 * answers like GET /subscription for s (NULL: the stored one), plus "change": change (a new
 * reference, taken; may be NULL).
 */
enum err payments_stripe_of(struct request *req, struct stripe_client **out);
enum err payments_store_answer(struct request *req, struct stripe_client *sc,
                               const struct stripe_error *se, struct subscription *sub);
enum err payments_check_answer(struct request *req, struct stripe_client *sc,
                               const struct stripe_error *se, struct subscription *sub);
enum err payments_subscription_answer(struct request *req, struct response *resp,
                                      const struct subscription *s, json_t *change);

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

/*
 * For tokens.c: the user a request is about (named: the body's or query's user_id, which only a
 * service may give for another user), its effective tier and the state of every quota of the
 * catalogue at now (states[TIER_QUOTA_MAX]). Fails the request on a refusal or a store error.
 */
struct tier;
struct gate_quota_state;
enum err access_state_of(struct request *req, const char *named, int64_t now, const char **user,
                         const struct tier **t, struct gate_quota_state *states);

/* The user a request is about, as access_state_of finds it, without reading anything. */
enum err access_subject_of(struct request *req, const char *named, const char **user);

/* ledger.c */
enum err access_ledger(struct request *req, struct response *resp);
enum err access_quota_grant(struct request *req, struct response *resp);
struct ledger_entry;
json_t *ledger_entry_json(const struct ledger_entry *e); /* for `subgate user` */

/* tokens.c */
enum err tokens_jwks(struct request *req, struct response *resp);
enum err tokens_entitlement(struct request *req, struct response *resp);

#endif /* SUBGATE_API_HANDLERS_H */
