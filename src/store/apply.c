/*
 * apply.c: the rules that take several row operations, written once for every backend: store a
 * subscription or invoice state only when billing/order.h says it is newer, and the webhook
 * inbox (record an event and apply its effect in one transaction). A new rule for applying
 * webhook events goes here, in apply_effect() and the functions it calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/jw.h"
#include "base/log.h"
#include "base/str.h"
#include "billing/order.h"
#include "billing/status.h"
#include "store/backend.h"
#include "store/store.h"

/* Apply-if-newer */

/*
 * Stores s unless the stored state is newer, inside a write transaction: the stored row is
 * locked (or inserted) first, so two appliers of one subscription end with the newer state.
 */
static enum err subscription_apply(const struct store_ops *ops, struct store_tx *tx,
                                   const struct subscription *s, int64_t now, bool *applied,
                                   bool *same_second)
{
    struct subscription stored, merged;
    struct store_sub_row row;
    bool inserted = false;
    enum err err;

    *applied = false;
    if (same_second)
        *same_second = false;
    (void)subscription_state_merge(NULL, s, &merged); /* nothing stored: always stored */
    row = store_sub_row_of(&merged, now);
    err = ops->subscription_get(tx, s->id, true, &stored);
    if (err == ERR_NOT_FOUND) {
        err = ops->subscription_insert_new(tx, &row, &inserted);
        if (err || inserted) {
            *applied = inserted;
            return err;
        }
        err = ops->subscription_get(tx, s->id, true, &stored); /* inserted meanwhile */
    }
    if (err)
        return err;
    if (strcmp(stored.user_id, s->user_id) != 0)
        return ERR_CONFLICT; /* a subscription never changes hands */
    if (same_second)
        *same_second =
            !s->answered && s->stripe_updated == stored.stripe_updated &&
            (subscription_state_is_newer(s, &stored) || subscription_state_is_newer(&stored, s));
    if (!subscription_state_merge(&stored, s, &merged))
        return ERR_OK;
    *applied = subscription_state_is_newer(s, &stored);
    row = store_sub_row_of(&merged, now);
    return ops->subscription_put(tx, &row);
}

/*
 * Stores inv unless the stored invoice is further along; *applied says whether it was. An
 * invoice stored for another user is ERR_CONFLICT: nothing is written. err and stored: what
 * invoice_get(lock) said of inv's id (ERR_NOT_FOUND: none stored yet).
 */
static enum err invoice_apply_read(const struct store_ops *ops, struct store_tx *tx,
                                   const struct invoice *inv, enum err err, struct invoice *stored,
                                   bool *applied)
{
    bool inserted = false;

    *applied = false;
    if (err == ERR_NOT_FOUND) {
        err = ops->invoice_insert_new(tx, inv, &inserted);
        if (err || inserted) {
            *applied = inserted;
            return err;
        }
        err = ops->invoice_get(tx, inv->id, true, stored);
    }
    if (err)
        return err;
    if (strcmp(stored->user_id, inv->user_id) != 0)
        return ERR_CONFLICT; /* an invoice never changes hands, as a subscription does not */
    if (!invoice_state_supersedes(inv, stored))
        return ERR_OK; /* a late state: the stored invoice is further along */
    *applied = true;
    return ops->invoice_put(tx, inv);
}

/* invoice_apply_read after reading the stored invoice, locked (err: what the read said). */
static enum err invoice_apply(const struct store_ops *ops, struct store_tx *tx,
                              const struct invoice *inv, bool *applied)
{
    struct invoice stored;
    enum err err = ops->invoice_get(tx, inv->id, true, &stored);

    return invoice_apply_read(ops, tx, inv, err, &stored, applied);
}

/*
 * After a live state of a user's subscription is stored: when the user now has two or more live
 * subscriptions, every one but the oldest (Stripe's created, then id) is recorded as a
 * duplicate to cancel and refund (api/ does, at Stripe), once, and logged at error level.
 */
static enum err note_duplicates(const struct store_ops *ops, struct store_tx *tx,
                                const char *user_id, int64_t now, bool *noted)
{
    struct subscription live[4];
    int n = 0;
    enum err err = ops->subscription_list_live(tx, user_id, (int)ARRAY_SIZE(live), live, &n);

    for (int i = 1; i < n && !err; i++) {
        struct duplicate_record d = { .status = "pending", .detected_at = now };
        bool inserted = false;
        memcpy(d.id, live[i].id, sizeof(d.id));
        memcpy(d.user_id, user_id, strlen(user_id) + 1); /* < USER_ID_MAX: checked on the way in */
        memcpy(d.kept_id, live[0].id, sizeof(d.kept_id));
        err = ops->duplicate_insert(tx, &d, &inserted);
        if (!err && inserted)
            *noted = true; /* store_duplicates_noted once the run is over */
        if (!err && inserted)
            log_error("user '%s' has a second live subscription '%s' (keeping '%s'): it is "
                      "canceled and refunded",
                      user_id, d.id, d.kept_id);
    }
    return err;
}

/* Outgoing events */

struct apply_arg {
    const struct store *st;
    const struct store_ops *ops;
    const struct subscription *sub;
    const struct invoice *inv;
    int64_t now;
    bool applied;
    bool noted; /* a duplicate recorded (in some attempt: a rolled-back one counts too) */
};

static enum err subscription_apply_tx(struct store_tx *tx, void *arg)
{
    struct apply_arg *a = arg;
    char old[TIER_ID_MAX];
    enum err err = outbox_tier_before(a->st, tx, a->sub->user_id, a->now, old);

    if (!err)
        err = subscription_apply(a->ops, tx, a->sub, a->now, &a->applied, NULL);
    if (!err && a->applied && sub_status_is_live(a->sub->status))
        err = note_duplicates(a->ops, tx, a->sub->user_id, a->now, &a->noted);
    if (!err && a->applied)
        err = outbox_tier_after(
            a->st, tx, a->sub->user_id,
            &(struct outbox_cause){ a->sub->id, "", a->sub->stripe_updated, false }, old, a->now);
    return err;
}

enum err store_subscription_apply(struct store *st, const struct subscription *s, bool *applied)
{
    struct apply_arg a = { .st = st, .ops = st->ops, .sub = s, .now = clock_now() };
    enum err err;

    *applied = false;
    if (!store_record_check(&store_subscription_record, s, true))
        return ERR_INVALID;
    err = store_run(st, STORE_RUN_WRITE, subscription_apply_tx, &a);
    store_cache_forget(st,
                       s->user_id); /* even on failure: a lost COMMIT answer may have committed */
    if (a.noted)
        store_duplicates_noted(st); /* the same */
    *applied = !err && a.applied;
    return err;
}

static enum err invoice_apply_tx(struct store_tx *tx, void *arg)
{
    struct apply_arg *a = arg;

    return invoice_apply(a->ops, tx, a->inv, &a->applied);
}

enum err store_invoice_apply(struct store *st, const struct invoice *inv, bool *applied)
{
    struct apply_arg a = { .ops = st->ops, .inv = inv };
    enum err err;

    *applied = false;
    if (!store_record_check(&store_invoice_record, inv, true))
        return ERR_INVALID;
    err = store_run(st, STORE_RUN_WRITE, invoice_apply_tx, &a);
    *applied = !err && a.applied;
    return err;
}

/* The webhook inbox */

struct event_ctx {
    const struct store *st;
    const struct store_ops *ops;
    struct store_tx *tx;
    const struct store_event_in *in;
    int64_t now;
    char *errbuf;
    size_t errlen;
    char *sub_user; /* [USER_ID_MAX]: the user whose subscription the run wrote, "" if none */
    bool *noted;    /* set when the run recorded a duplicate subscription */
};

/* Links user and Stripe customer unless either is linked already; marks the trial if asked. */
static enum err customer_link(const struct event_ctx *x, const char *user_id,
                              const char *customer_id, bool trial)
{
    struct customer c = { .had_trial = trial, .created = x->now };
    bool linked = false, found = false;
    enum err err = ERR_OK;

    if (user_id[0] && customer_id[0]) {
        (void)str_copy(c.user_id, sizeof(c.user_id), user_id); /* same size */
        (void)str_copy(c.stripe_customer_id, sizeof(c.stripe_customer_id), customer_id);
        err = x->ops->customer_insert_new(x->tx, &c, &linked);
    }
    if (!err && trial && user_id[0])
        err = x->ops->customer_mark_trial(x->tx, user_id, &found);
    return err;
}

/*
 * The user of an object: the user its Stripe customer is linked to owns it. An object that names
 * a user of its own (metadata.user_id, client_reference_id) must name that one (ERR_CONFLICT
 * otherwise: nothing is applied); before the customer is linked, the named user is taken (the
 * caller links them).
 */
static enum err resolve_user_read(const struct event_ctx *x, enum err err,
                                  const struct customer *cus, char user_id[USER_ID_MAX])
{
    const struct billing_event *ev = x->in->ev;

    if (err == ERR_NOT_FOUND && user_id[0])
        return ERR_OK;
    if (err == ERR_NOT_FOUND)
        store_errf(x->errbuf, x->errlen,
                   "no user for stripe customer '%s': no metadata.user_id and the customer is not "
                   "linked yet",
                   ev->customer_id);
    if (err)
        return err;
    if (user_id[0] && strcmp(user_id, cus->user_id) != 0) {
        store_errf(x->errbuf, x->errlen,
                   "stripe customer '%s' is linked to user '%s' but the event names user '%s': "
                   "not applied",
                   ev->customer_id, cus->user_id, user_id);
        return ERR_CONFLICT;
    }
    memcpy(user_id, cus->user_id, USER_ID_MAX);
    return ERR_OK;
}

/* resolve_user_read after reading the link of the event's Stripe customer, if it names one. */
static enum err resolve_user(const struct event_ctx *x, char user_id[USER_ID_MAX])
{
    const struct billing_event *ev = x->in->ev;
    struct customer cus;
    enum err err = ev->customer_id[0]
                       ? x->ops->customer_get_by_stripe_id(x->tx, ev->customer_id, &cus)
                       : ERR_NOT_FOUND;

    return resolve_user_read(x, err, &cus, user_id);
}

/* The Stripe event's own key: one outgoing event per Stripe event, however often replayed. */
static enum err emit_stripe(const struct event_ctx *x, const char *type, struct jw *w)
{
    char key[sizeof(((struct outbox_event *)0)->dedupe_key)];
    size_t len = 0;
    char *data = jw_finish(w, &len);
    enum err err;

    if (!data)
        return ERR_INVALID;
    (void)snprintf(key, sizeof(key), "stripe:%s:%s", type, x->in->ev->id); /* ids fit */
    err = outbox_emit(x->st, x->tx, type, key, data, x->now);
    free(data);
    return err;
}

static enum err emit_trial_will_end(const struct event_ctx *x, const struct subscription *sub)
{
    struct jw w;

    if (!x->st->outbox.enabled)
        return ERR_OK;
    jw_begin(&w);
    jw_str(&w, "user_id", sub->user_id);
    jw_str(&w, "subscription_id", sub->id);
    jw_str(&w, "tier", sub->tier);
    jw_i64(&w, "trial_end", sub->trial_end);
    return emit_stripe(x, "subscription.trial_will_end", &w);
}

/* payment.failed and payment.action_required, from the invoice's events. */
static enum err emit_payment(const struct event_ctx *x, const struct invoice *inv)
{
    const char *t = x->in->ev->type;
    const char *type = strcmp(t, "invoice.payment_failed") == 0 ? "payment.failed"
                       : strcmp(t, "invoice.payment_action_required") == 0
                           ? "payment.action_required"
                           : NULL;
    struct jw w;

    if (!type || !x->st->outbox.enabled)
        return ERR_OK;
    jw_begin(&w);
    jw_str(&w, "user_id", inv->user_id);
    jw_str(&w, "invoice_id", inv->id);
    jw_str(&w, "subscription_id", inv->subscription_id);
    jw_i64(&w, "amount_due", inv->amount_due);
    jw_str(&w, "currency", inv->currency);
    jw_str(&w, "hosted_invoice_url", inv->hosted_invoice_url);
    return emit_stripe(x, type, &w);
}

static enum err apply_subscription(const struct event_ctx *x, const char *user_id)
{
    struct subscription sub = x->in->ev->sub;
    char old[TIER_ID_MAX] = "";
    bool applied = false;
    enum err err;

    if (user_id[0])
        memcpy(sub.user_id, user_id, USER_ID_MAX);
    err = resolve_user(x, sub.user_id);
    if (!err) {
        memcpy(x->sub_user, sub.user_id, USER_ID_MAX); /* its cache entry goes after the run */
        err = outbox_tier_before(x->st, x->tx, sub.user_id, x->now, old);
    }
    if (!err)
        err = subscription_apply(x->ops, x->tx, &sub, x->now, &applied, x->in->same_second);
    if (err == ERR_CONFLICT && x->errbuf && !x->errbuf[0])
        store_errf(x->errbuf, x->errlen,
                   "subscription '%s' belongs to another user than '%s': not applied", sub.id,
                   sub.user_id);
    if (!err)
        err = customer_link(x, sub.user_id, sub.stripe_customer_id,
                            billing_subscription_has_trial(&sub));
    if (!err && applied && sub_status_is_live(sub.status))
        err = note_duplicates(x->ops, x->tx, sub.user_id, x->now, x->noted);
    if (!err && applied)
        err = outbox_tier_after(x->st, x->tx, sub.user_id,
                                &(struct outbox_cause){ sub.id, "", sub.stripe_updated, false },
                                old, x->now);
    if (!err && strcmp(x->in->ev->type, "customer.subscription.trial_will_end") == 0)
        err = emit_trial_will_end(x, &sub);
    return err;
}

/* Stores s unless the stored schedule is newer; *applied says whether it was. */
static enum err schedule_apply(const struct store_ops *ops, struct store_tx *tx,
                               const struct schedule_record *s, bool *applied)
{
    struct schedule_record stored;
    enum err err = ops->schedule_get(tx, s->id, true, &stored);

    *applied = false;
    if (err && err != ERR_NOT_FOUND)
        return err;
    if (!err && !schedule_state_is_newer(s, &stored))
        return ERR_OK;
    *applied = true;
    return ops->schedule_put(tx, s);
}

struct schedule_arg {
    const struct store_ops *ops;
    const struct schedule_record *in;
    struct schedule_record *out;
    bool applied;
};

static enum err schedule_apply_tx(struct store_tx *tx, void *arg)
{
    struct schedule_arg *a = arg;

    return schedule_apply(a->ops, tx, a->in, &a->applied);
}

enum err store_schedule_apply(struct store *st, const struct schedule_record *s, bool *applied)
{
    struct schedule_arg a = { .ops = st->ops, .in = s };
    enum err err;

    *applied = false;
    if (!store_record_check(&store_schedule_record, s, true))
        return ERR_INVALID;
    err = store_run(st, STORE_RUN_WRITE, schedule_apply_tx, &a);
    *applied = !err && a.applied;
    return err;
}

static enum err schedule_get_tx(struct store_tx *tx, void *arg)
{
    struct schedule_arg *a = arg;

    return a->ops->schedule_get(tx, a->in->id, false, a->out);
}

enum err store_schedule_get(struct store *st, const char *id, struct schedule_record *out)
{
    struct schedule_record key = { 0 };
    struct schedule_arg a = { .ops = st->ops, .in = &key, .out = out };

    if (!store_arg_ok(id, sizeof(key.id)))
        return ERR_INVALID;
    memcpy(key.id, id, strlen(id) + 1);
    return store_run(st, STORE_RUN_READ, schedule_get_tx, &a);
}

static enum err apply_schedule(const struct event_ctx *x)
{
    bool applied = false;

    return schedule_apply(x->ops, x->tx, &x->in->ev->schedule, &applied);
}

/*
 * Resolves the invoice's user, then applies it. Where the engine reads the customer's link and
 * the stored invoice in one statement (a round trip less on PostgreSQL), it does; the invoice's
 * lock is then taken before the user is known, which changes nothing when the event is refused.
 */
static enum err apply_invoice(const struct event_ctx *x)
{
    const struct billing_event *ev = x->in->ev;
    struct invoice inv = ev->invoice;
    struct store_invoice_context ctx;
    bool applied = false;
    enum err err;

    ctx.customer = ERR_NOT_FOUND; /* each read below sets its own */
    ctx.stored = ERR_NOT_FOUND;
    if (x->ops->invoice_context_get && ev->customer_id[0]) {
        err = x->ops->invoice_context_get(x->tx, ev->customer_id, inv.id, &ctx);
        if (!err)
            err = resolve_user_read(x, ctx.customer, &ctx.cus, inv.user_id);
    } else {
        err = resolve_user(x, inv.user_id);
        if (!err)
            ctx.stored = x->ops->invoice_get(x->tx, inv.id, true, &ctx.inv);
    }
    if (!err)
        err = invoice_apply_read(x->ops, x->tx, &inv, ctx.stored, &ctx.inv, &applied);
    if (err == ERR_CONFLICT && x->errbuf && !x->errbuf[0])
        store_errf(x->errbuf, x->errlen,
                   "invoice '%s' belongs to another user than '%s': not applied", inv.id,
                   inv.user_id);
    return err ? err : emit_payment(x, &inv);
}

/* Marks the session subgate recorded (if it did) complete or expired. */
static enum err session_close(const struct event_ctx *x, const char *status)
{
    bool closed = false;

    if (!x->in->ev->session_id[0])
        return ERR_OK;
    return x->ops->checkout_close(x->tx, x->in->ev->session_id, status, &closed);
}

/*
 * A completed session names its user (client_reference_id, metadata.user_id): when its customer
 * is linked already, to that user only (ERR_CONFLICT otherwise, nothing applied).
 */
static enum err apply_checkout(const struct event_ctx *x)
{
    const struct billing_event *ev = x->in->ev;
    char user_id[USER_ID_MAX];
    enum err err = ERR_OK;

    memcpy(user_id, ev->user_id, USER_ID_MAX);
    if (user_id[0])
        err = resolve_user(x, user_id);
    if (!err)
        err = session_close(x, "complete");
    if (!err)
        err = customer_link(x, ev->user_id, ev->customer_id, false);

    if (!err && ev->has_sub)
        err = apply_subscription(x, ev->user_id);
    return err;
}

static enum err apply_effect(const struct event_ctx *x)
{
    switch (x->in->ev->kind) {
    case EVENT_CHECKOUT:
        return apply_checkout(x);
    case EVENT_SUBSCRIPTION:
        return apply_subscription(x, "");
    case EVENT_INVOICE:
        return apply_invoice(x);
    case EVENT_CHECKOUT_EXPIRED:
        return session_close(x, "expired");
    case EVENT_SCHEDULE:
        return apply_schedule(x);
    case EVENT_IGNORED:
        break;
    }
    return ERR_OK;
}

struct record_arg {
    struct event_ctx x;
    enum store_event_result result;
};

/* Claims the event id first: a concurrent delivery of it waits, then finds it applied. */
static enum err record_apply_tx(struct store_tx *tx, void *arg)
{
    struct record_arg *a = arg;
    const struct billing_event *ev = a->x.in->ev;
    bool claimed = false;
    enum err err;

    a->x.tx = tx;
    a->x.sub_user[0] = '\0';
    if (a->x.in->same_second)
        *a->x.in->same_second = false;
    a->result = STORE_EVENT_DUPLICATE;
    store_errf(a->x.errbuf, a->x.errlen, "%s", "");
    err = a->x.ops->event_claim(tx, a->x.in, ev->kind == EVENT_IGNORED ? "ignored" : "applied",
                                a->x.now, &claimed);
    if (err || !claimed)
        return err;
    err = apply_effect(&a->x);
    if (!err)
        a->result = ev->kind == EVENT_IGNORED ? STORE_EVENT_IGNORED : STORE_EVENT_APPLIED;
    return err;
}

/* A fixed-size string field: terminated inside its array (it may be empty). */
#define FITS(arr) (memchr((arr), '\0', sizeof(arr)) != NULL)

/* The event names itself (id, type) and carries its raw body: enough to record it. */
static bool event_envelope_ok(const struct store_event_in *in)
{
    const struct billing_event *ev = in->ev;

    return ev && in->raw && store_arg_ok(ev->id, sizeof(ev->id)) &&
           store_arg_ok(ev->type, sizeof(ev->type));
}

/*
 * Enough to apply it too: every string fits its field. The user ids may still be "" (they are
 * resolved through the customer); the rest is checked as store_*_upsert would.
 */
static bool event_in_ok(const struct store_event_in *in)
{
    const struct billing_event *ev = in->ev;

    if (!event_envelope_ok(in))
        return false;
    if (!FITS(ev->customer_id) || !FITS(ev->user_id) || !FITS(ev->session_subscription) ||
        !FITS(ev->session_id))
        return false;
    if (ev->has_sub && (!store_record_check(&store_subscription_record, &ev->sub, false) ||
                        !store_arg_ok(ev->sub.id, sizeof(ev->sub.id))))
        return false;
    if (ev->kind == EVENT_INVOICE &&
        (!store_record_check(&store_invoice_record, &ev->invoice, false) ||
         !store_arg_ok(ev->invoice.id, sizeof(ev->invoice.id))))
        return false;
    if (ev->kind == EVENT_SCHEDULE &&
        !store_record_check(&store_schedule_record, &ev->schedule, true))
        return false;
    return true;
}

struct failed_arg {
    const struct store_ops *ops;
    const struct store_event_in *in;
    int64_t now;
    const char *why;
};

static enum err record_failed_tx(struct store_tx *tx, void *arg)
{
    struct failed_arg *a = arg;
    char why[sizeof(((struct webhook_event *)0)->last_error)];

    (void)str_copy(why, sizeof(why), a->why); /* a cut message is still a message */
    return a->ops->event_fail(tx, a->in, a->now, why);
}

static enum err record_failed(struct store *st, const struct store_event_in *in, int64_t now,
                              const char *why)
{
    struct failed_arg a = { st->ops, in, now, why };

    return store_run(st, STORE_RUN_SINGLE, record_failed_tx, &a);
}

enum err store_event_record_apply(struct store *st, const struct store_event_in *in,
                                  enum store_event_result *result, char *errbuf, size_t errlen)
{
    char why[sizeof(((struct webhook_event *)0)->last_error)] = "";
    char engine[sizeof(why)] = "";
    char sub_user[USER_ID_MAX] = "";
    bool noted = false;
    struct record_arg a = { { st, st->ops, NULL, in, clock_now(), why, sizeof(why), sub_user,
                              &noted },
                            STORE_EVENT_DUPLICATE };
    enum err err;

    *result = STORE_EVENT_DUPLICATE;
    store_errf(errbuf, errlen, "%s", "");
    if (!event_in_ok(in)) {
        store_errf(errbuf, errlen, "event: a field is missing or too long");
        return ERR_INVALID;
    }
    /* The event's claim, its first statement, touches no row but the event's own. */
    err = store_run_msg(st, STORE_RUN_WRITE_CLAIM, record_apply_tx, &a, engine, sizeof(engine));
    store_cache_forget(st, sub_user); /* even on failure: a lost COMMIT answer may have committed */
    if (noted)
        store_duplicates_noted(st); /* the same */
    if (!err) {
        *result = a.result;
        return ERR_OK;
    }
    if (!why[0] && engine[0])
        store_errf(why, sizeof(why), "database: %s", engine);
    if (!why[0])
        (void)str_copy(why, sizeof(why), err_name(err)); /* fits */
    store_errf(errbuf, errlen, "%s", why);
    if (record_failed(st, in, a.x.now, why) != ERR_OK)
        log_error("cannot record event '%s' as failed", in->ev->id);
    return err;
}

enum err store_event_record_failed(struct store *st, const struct store_event_in *in,
                                   const char *why)
{
    if (!event_envelope_ok(in) || !why)
        return ERR_INVALID;
    return record_failed(st, in, clock_now(), why);
}
