/* duplicates.c: canceling and refunding a user's second live subscription (see duplicates.h). */
#include "api/duplicates.h"

#include <stdio.h>
#include <string.h>

#include "api/stripe_glue.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "stripe/resources.h"

#define PAGE_LIMIT 100

/* Cancels d at Stripe now and stores the canceled state. */
static enum err cancel(struct store *st, struct stripe_client *sc, const struct tier_catalog *cat,
                       const struct duplicate_record *d, struct subscription *sub,
                       struct stripe_error *se)
{
    enum err err = stripe_subscription_cancel(sc, d->id, sub, se);

    if (err == ERR_REFUSED || err == ERR_INVALID || err == ERR_NOT_FOUND) /* canceled already? */
        err = stripe_subscription_retrieve(sc, d->id, sub, se);
    if (err)
        return err;
    if (sub->status != SUB_STATUS_CANCELED && sub->status != SUB_STATUS_INCOMPLETE_EXPIRED) {
        snprintf(se->message, sizeof(se->message), "subscription '%s' is still %s at stripe", d->id,
                 sub_status_name(sub->status));
        return ERR_UPSTREAM;
    }
    return glue_subscription_store_answer(st, cat, sc, d->user_id, se, sub, NULL);
}

/* Refunds what is left of one charge; a charge refunded before counts as done. */
static enum err refund(struct stripe_client *sc, const char *charge, int64_t *amount,
                       struct stripe_error *se)
{
    char key[STRIPE_IDEMPOTENCY_KEY_MAX];
    struct stripe_refund r;
    enum err err;

    stripe_idempotency_key_for("duplicate-refund", charge, key);
    err = stripe_refund_create(sc, charge, "duplicate", key, &r, se);
    if (err == ERR_REFUSED && strcmp(se->code, "charge_already_refunded") == 0)
        return ERR_OK;
    if (!err)
        *amount += r.amount;
    return err;
}

/* Refunds every paid charge of the subscription's invoices (the customer's, filtered). */
static enum err refund_all(struct stripe_client *sc, const struct subscription *sub,
                           int64_t *amount, struct stripe_error *se)
{
    char after[STRIPE_ID_MAX] = "";
    struct stripe_invoice_page page;
    bool more = false;
    enum err err;

    do {
        err = stripe_invoice_list(sc, sub->stripe_customer_id, after[0] ? after : NULL, PAGE_LIMIT,
                                  &page, se);
        if (err)
            return err;
        for (size_t i = 0; i < page.len && !err; i++) {
            const struct stripe_invoice *inv = &page.data[i];
            if (strcmp(inv->invoice.subscription_id, sub->id) == 0 && inv->charge[0] &&
                inv->invoice.amount_paid > 0)
                err = refund(sc, inv->charge, amount, se);
        }
        more = page.has_more && page.last_id[0];
        (void)str_copy(after, sizeof(after), page.last_id); /* both STRIPE_ID_MAX */
        stripe_invoice_page_release(&page);
    } while (!err && more);
    return err;
}

static bool resolve_one(struct store *st, struct stripe_client *sc, const struct tier_catalog *cat,
                        struct duplicate_record *d)
{
    struct subscription sub;
    struct stripe_error se = { 0 };
    int64_t amount = 0;
    enum err err = cancel(st, sc, cat, d, &sub, &se);

    if (!err)
        err = refund_all(sc, &sub, &amount, &se);
    d->attempts++;
    if (err) {
        (void)str_copy(d->last_error, sizeof(d->last_error),
                       se.message[0] ? se.message : err_name(err)); /* cut is fine */
        log_warn("cannot cancel and refund duplicate subscription '%s' of user '%s' yet: %s", d->id,
                 d->user_id, d->last_error);
    } else {
        (void)str_copy(d->status, sizeof(d->status), "resolved");
        d->refunded += amount;
        d->last_error[0] = '\0';
        d->resolved_at = clock_now();
        log_error("duplicate subscription '%s' of user '%s' canceled, %lld refunded (kept '%s')",
                  d->id, d->user_id, (long long)amount, d->kept_id);
    }
    if (store_duplicate_update(st, d) != ERR_OK)
        log_error("cannot record duplicate subscription '%s'", d->id);
    return !err;
}

bool duplicates_pending(struct store *st)
{
    bool any = false;

    if (store_duplicate_pending_any(st, &any) != ERR_OK) {
        log_error("cannot read the pending duplicate subscriptions: storage_error");
        return false;
    }
    return any;
}

int duplicates_resolve(struct store *st, struct stripe_client *sc, const struct tier_catalog *cat,
                       int max)
{
    struct duplicate_record list[8];
    int n = 0, resolved = 0;

    if (!sc || max <= 0)
        return 0;
    if (max > (int)ARRAY_SIZE(list))
        max = (int)ARRAY_SIZE(list);
    if (store_duplicate_list(st, true, max, list, &n) != ERR_OK) {
        log_error("cannot read the pending duplicate subscriptions: storage_error");
        return 0;
    }
    for (int i = 0; i < n; i++)
        resolved += resolve_one(st, sc, cat, &list[i]);
    return resolved;
}
