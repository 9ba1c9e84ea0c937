/*
 * sync.c: `subgate sync` (see sync.h). Every write goes through store_subscription_apply or
 * store_invoice_apply, each atomic and ordered on its own, so a sync racing webhooks or requests
 * never leaves a state older than the one it found.
 */
#include "api/sync.h"

#include <stdbool.h>
#include <string.h>

#include "api/stripe_glue.h"
#include "base/clock.h"
#include "base/str.h"
#include "billing/records.h"
#include "billing/status.h"
#include "store/store.h"
#include "stripe/resources.h"

#define PAGE_LIMIT 100

struct sync_ctx {
    struct store *st;
    struct stripe_client *sc;
    const struct tier_catalog *cat;
    FILE *out;
    struct sync_totals *tot;
};

/* Per customer counts, printed on its line. */
struct sync_counts {
    int subscriptions;
    int repaired;
    int invoices;
};

static enum err sync_subscription(struct sync_ctx *x, const struct customer *c,
                                  const struct stripe_error *se, struct subscription *s,
                                  struct sync_counts *n)
{
    bool changed = false;
    enum err err =
        glue_subscription_store_answer(x->st, x->cat, x->sc, c->user_id, se, s, &changed);

    if (err == ERR_UPSTREAM) {
        fprintf(x->out,
                "  %s: subscription '%s' has price '%s', which no tier names: not applied "
                "(configure it, then sync again)\n",
                c->stripe_customer_id, s->id, s->price_id);
        return err;
    }
    if (err) {
        fprintf(x->out, "  %s: cannot store subscription '%s': %s\n", c->stripe_customer_id, s->id,
                err_name(err));
        return err;
    }
    n->subscriptions++;
    if (changed) {
        n->repaired++;
        fprintf(x->out, "  repaired %s (user %s): status '%s', tier '%s'%s\n", s->id, c->user_id,
                sub_status_name(s->status), s->tier,
                s->cancel_at_period_end ? ", cancels at period end" : "");
    }
    return ERR_OK;
}

static enum err list_failed(struct sync_ctx *x, const struct customer *c, const char *what,
                            enum err err, const struct stripe_error *se)
{
    fprintf(x->out, "  %s: cannot list %s at stripe (%s): %s\n", c->stripe_customer_id, what,
            err_name(err), se->message);
    return err;
}

static enum err sync_subscriptions(struct sync_ctx *x, const struct customer *c,
                                   struct sync_counts *n)
{
    char after[STRIPE_ID_MAX] = "";
    struct stripe_subscription_page page;
    struct stripe_error se;
    bool more = false;
    enum err err;

    do {
        err = stripe_subscription_list(x->sc, c->stripe_customer_id, after[0] ? after : NULL,
                                       PAGE_LIMIT, &page, &se);
        if (err)
            return list_failed(x, c, "subscriptions", err, &se);
        for (size_t i = 0; i < page.len && !err; i++)
            err = sync_subscription(x, c, &se, &page.data[i], n);
        more = page.has_more && page.last_id[0];
        (void)str_copy(after, sizeof(after), page.last_id); /* both STRIPE_ID_MAX */
        stripe_subscription_page_release(&page);
    } while (!err && more);
    return err;
}

static enum err sync_invoices(struct sync_ctx *x, const struct customer *c, struct sync_counts *n)
{
    char after[STRIPE_ID_MAX] = "";
    struct stripe_invoice_page page;
    struct stripe_error se;
    bool more = false;
    enum err err;

    do {
        err = stripe_invoice_list(x->sc, c->stripe_customer_id, after[0] ? after : NULL, PAGE_LIMIT,
                                  &page, &se);
        if (err)
            return list_failed(x, c, "invoices", err, &se);
        for (size_t i = 0; i < page.len && !err; i++) {
            struct invoice *inv = &page.data[i].invoice;
            (void)str_copy(inv->user_id, sizeof(inv->user_id), c->user_id); /* same size */
            bool applied = false;
            err = store_invoice_apply(x->st, inv, &applied);
            n->invoices += err ? 0 : 1;
        }
        more = page.has_more && page.last_id[0];
        (void)str_copy(after, sizeof(after), page.last_id); /* both STRIPE_ID_MAX */
        stripe_invoice_page_release(&page);
    } while (!err && more);
    return err;
}

static enum err sync_customer(struct sync_ctx *x, const struct customer *c)
{
    struct sync_counts n = { 0 };
    enum err err = sync_subscriptions(x, c, &n);

    if (!err)
        err = sync_invoices(x, c, &n);
    x->tot->subscriptions += n.subscriptions;
    x->tot->repaired += n.repaired;
    x->tot->invoices += n.invoices;
    if (err) {
        x->tot->failed++;
        fprintf(x->out, "%s user %s: failed (%s)\n", c->stripe_customer_id, c->user_id,
                err_name(err));
        return err;
    }
    x->tot->customers++;
    fprintf(x->out, "%s user %s: %d subscription(s), %d repaired, %d invoice(s)\n",
            c->stripe_customer_id, c->user_id, n.subscriptions, n.repaired, n.invoices);
    return ERR_OK;
}

/* Syncs the stored customer behind one Stripe customer; one that is not stored is skipped. */
static enum err sync_listed(struct sync_ctx *x, const struct stripe_customer *sc)
{
    struct customer c;
    enum err err;

    if (sc->deleted)
        return ERR_OK;
    err = store_customer_get_by_stripe_id(x->st, sc->id, &c);
    if (err == ERR_NOT_FOUND)
        return ERR_OK;
    if (err) {
        x->tot->failed++;
        fprintf(x->out, "%s: cannot read the stored customer (%s)\n", sc->id, err_name(err));
        return err;
    }
    return sync_customer(x, &c);
}

/* Walks Stripe's customers page by page: the store has no list of its customers. */
static enum err sync_all(struct sync_ctx *x)
{
    char after[STRIPE_ID_MAX] = "";
    struct stripe_customer_page page;
    struct stripe_error se;
    enum err first = ERR_OK, err;
    bool more = false;

    do {
        err = stripe_customer_list(x->sc, NULL, after[0] ? after : NULL, PAGE_LIMIT, &page, &se);
        if (err) {
            fprintf(x->out, "cannot list customers at stripe (%s): %s\n", err_name(err),
                    se.message);
            return first ? first : err;
        }
        for (size_t i = 0; i < page.len; i++)
            if ((err = sync_listed(x, &page.data[i])) && !first)
                first = err;
        more = page.has_more && page.last_id[0];
        (void)str_copy(after, sizeof(after), page.last_id); /* both STRIPE_ID_MAX */
        stripe_customer_page_release(&page);
    } while (more);
    return first;
}

enum err sync_run(struct store *st, struct stripe_client *sc, const struct tier_catalog *cat,
                  const char *user_id, FILE *out, struct sync_totals *tot)
{
    struct sync_ctx x = { st, sc, cat, out, tot };
    struct customer c;
    enum err err;

    memset(tot, 0, sizeof(*tot));
    if (!user_id)
        return sync_all(&x);
    err = store_customer_get(st, user_id, &c);
    if (err) {
        fprintf(out, "user %s: %s\n", user_id,
                err == ERR_NOT_FOUND ? "no stored customer" : err_name(err));
        return err;
    }
    return sync_customer(&x, &c);
}
