/*
 * pg_db.c: the PostgreSQL backend's machinery (see pg_db.h). A pool of connections, each used by
 * one thread at a time with its statements prepared once per session; a connection found broken
 * is reset before its next use, so one store outlives a server restart.
 */
#include "store/pg_db.h"

#include <assert.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "billing/status.h"
#include "store/pool.h"

#define TX_ATTEMPTS 3 /* a transaction picked as a deadlock victim runs again, this many times */
#define PARAMS_MAX  24

/*
 * Session settings, before the URL's own (which win): connecting and every statement give up
 * within seconds instead of hanging on a dead or stuck server, and TCP keepalives notice a
 * peer that vanished without closing the connection. GSSAPI encryption is not tried (libpq's
 * default tries it first): setting it up loads Kerberos' state into every process, about half
 * a MiB of resident memory, for a transport TLS or a private network provides; a URL that wants
 * it says gssencmode=prefer or require. GSSAPI authentication, when the server asks for it, is
 * untouched.
 */
static const struct {
    const char *key;
    const char *value;
} conn_settings[] = {
    { "connect_timeout", "3" },
    { "gssencmode", "disable" },
    { "keepalives", "1" },
    { "keepalives_idle", "10" },
    { "keepalives_interval", "5" },
    { "keepalives_count", "3" },
    { "tcp_user_timeout", "10000" },
    { "application_name", "subgate" },
    { "options", "-c statement_timeout=15000 -c client_min_messages=warning" },
};

/* The parameters of one statement, as libpq takes them; numbers rendered in num[]. */
struct params {
    const char *values[PARAMS_MAX];
    int lengths[PARAMS_MAX];
    int formats[PARAMS_MAX];
    char num[PARAMS_MAX][24];
    int n;
};

/* Users whose usage changed: their ids, '\n' between them, NUL-terminated. */
struct usage_notes {
    char users[PG_USAGE_PAYLOAD_MAX];
    size_t len;
    bool all;    /* name every user */
    bool extras; /* and tell that some user has extra units */
};

/*
 * Pipelining (store_ops.pipeline_*): the first statements of a batch's units, recorded with
 * copies of their parameters, sent together, and their results kept until each unit takes its.
 */
#define PIPE_MAX    64   /* statements: a batch's units at most (group.c) */
#define PIPE_PARAMS 1024 /* their parameters; a statement past it is not recorded */
#define PIPE_BYTES  8192 /* their text parameters' bytes, the same */

struct pipe_param {
    size_t off;        /* a text one's bytes in the pipe's buf */
    const char *bytes; /* a binary one's: the caller's, which outlive the run (pg_bytes) */
    int len;           /* a binary one's */
    int format;
    bool null;
};

struct pipe_stmt {
    enum pg_stmt id;
    int first, n; /* its parameters, in the pipe's params */
    PGresult *res;
    bool recorded, sent, taken;
};

struct pipe {
    struct pipe_stmt stmt[PIPE_MAX];
    struct pipe_param params[PIPE_PARAMS]; /* in the connection's memory: no malloc a batch */
    int nparams;
    char buf[PIPE_BYTES];
    size_t len;
    bool capturing; /* between pipeline_capture(k) and pipeline_capture(-1) */
    int capture;    /* the statement being recorded; -1: none, statements only fail */
    int use;        /* the statement the running unit may take; -1: none */
};

struct conn {
    PGconn *db;               /* NULL until first used */
    const char *url;          /* borrowed from the store */
    bool prepared[PGS_COUNT]; /* in this session: a reset forgets them */
    bool op_first;            /* the next statement is the first of an operation */
    bool begin_pending;       /* tx_begin's BEGIN, not sent yet: the next statement sends it */
    char sqlstate[6];         /* of the last failure, "" when none */
    char errmsg[256];         /* of the last failure, for messages */
    struct usage_notes notes; /* pg_db_note_usage's, in the running run */
    struct pipe *pipe;        /* NULL until a batch pipelines on this connection */
};

/* What a run lends to its function. */
struct store_tx {
    struct conn *c;
};

struct pg_store {
    struct store base; /* first member: store.c casts between them */
    char *url;         /* the full URL, password included: never printed */
    char *shown;       /* user, host, port and database only, for messages */
    struct store_pool pool;
    struct conn *conns;
    int nconns;
    /* What the runs noted, until the listener thread takes it (pg_db_usage_take). */
    pthread_mutex_t tell_mu;
    struct usage_notes tell;
    int tell_fd; /* written when tell was empty; -1: no one sends it, nothing is kept */
};

static struct pg_store *to_pg(struct store *st)
{
    return (struct pg_store *)st;
}

/* Connections: lazily opened, checked before each operation, reset when broken. */

static void conn_note(struct conn *c, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char *nl;

    (void)str_copy(c->sqlstate, sizeof(c->sqlstate), state ? state : "");            /* 5 chars */
    (void)str_copy(c->errmsg, sizeof(c->errmsg), msg ? msg : PQerrorMessage(c->db)); /* cut */
    nl = strchr(c->errmsg, '\n');
    if (nl)
        *nl = '\0';
}

static bool sqlstate_is(const struct conn *c, const char *code)
{
    return strcmp(c->sqlstate, code) == 0;
}

/* Lost connection, server shutting down or overloaded, statement timed out: try again later. */
static bool conn_unavailable(const struct conn *c)
{
    return PQstatus(c->db) != CONNECTION_OK || str_has_prefix(c->sqlstate, "08") ||
           str_has_prefix(c->sqlstate, "57") || str_has_prefix(c->sqlstate, "53");
}

/* Maps a failed statement (res may be NULL) to an err; logs what is not expected. */
static enum err result_err(struct conn *c, const PGresult *res)
{
    conn_note(c, res);
    if (conn_unavailable(c)) {
        log_warn("postgres: unavailable: %s", c->errmsg);
        return ERR_UNAVAILABLE;
    }
    if (sqlstate_is(c, "23505"))
        return ERR_CONFLICT;
    if (sqlstate_is(c, "25006")) { /* read-only transaction: a standby, or writes switched off */
        log_warn("postgres: unavailable: %s", c->errmsg);
        return ERR_UNAVAILABLE;
    }
    if (!sqlstate_is(c, "42P01")) /* undefined table: the schema version of a new database */
        log_error("postgres: %s (%s)", c->errmsg, c->sqlstate);
    return ERR_STORE;
}

static void conn_forget_prepared(struct conn *c)
{
    memset(c->prepared, 0, sizeof(c->prepared));
}

/* Server notices go to our log, not to stderr as libpq's default does. */
static void notice_log(void *arg, const char *message)
{
    (void)arg;
    log_warn("postgres: %.*s", (int)strcspn(message, "\n"), message);
}

PGconn *pg_db_connect(const char *url)
{
    const char *keys[ARRAY_SIZE(conn_settings) + 2];
    const char *values[ARRAY_SIZE(conn_settings) + 2];
    size_t n = 0;
    PGconn *db;

    for (; n < ARRAY_SIZE(conn_settings); n++) {
        keys[n] = conn_settings[n].key;
        values[n] = conn_settings[n].value;
    }
    keys[n] = "dbname"; /* the URL, expanded: last, so what it sets wins */
    values[n++] = url;
    keys[n] = NULL;
    values[n] = NULL;
    db = PQconnectdbParams(keys, values, 1);
    if (!db)
        abort();                                      /* libpq is out of memory: as xmalloc does */
    (void)PQsetNoticeProcessor(db, notice_log, NULL); /* the previous one: the default */
    return db;
}

static enum err conn_connect(struct conn *c)
{
    c->db = pg_db_connect(c->url);
    conn_forget_prepared(c);
    if (PQstatus(c->db) == CONNECTION_OK)
        return ERR_OK;
    conn_note(c, NULL);
    return ERR_UNAVAILABLE;
}

static enum err conn_reset(struct conn *c)
{
    PQreset(c->db);
    conn_forget_prepared(c);
    if (PQstatus(c->db) != CONNECTION_OK) {
        conn_note(c, NULL);
        log_warn("postgres: cannot reconnect: %s", c->errmsg);
        return ERR_UNAVAILABLE;
    }
    log_info("postgres: reconnected");
    return ERR_OK;
}

/*
 * Before an operation: connects the first time; otherwise reads what the server sent while the
 * connection sat idle (without blocking: libpq's socket is non-blocking), so a server that shut
 * down or restarted since shows as a broken connection, which is reset before anything is sent.
 * A server shutting down sends a FATAL message, then closes: the first read takes the message,
 * the second finds the end of the stream.
 */
static enum err conn_ready(struct conn *c)
{
    if (!c->db)
        return conn_connect(c);
    for (int i = 0;
         i < 2 && PQstatus(c->db) == CONNECTION_OK && PQtransactionStatus(c->db) == PQTRANS_IDLE;
         i++)
        (void)!PQconsumeInput(c->db); /* a failure shows in PQstatus */
    if (PQstatus(c->db) == CONNECTION_OK)
        return ERR_OK;
    return conn_reset(c);
}

static struct conn *conn_checkout(struct pg_store *s)
{
    struct conn *c = store_pool_take(&s->pool);

    c->op_first = true;
    c->begin_pending = false;
    c->sqlstate[0] = '\0';
    c->errmsg[0] = '\0';
    return c;
}

static void conn_checkin(struct pg_store *s, struct conn *c)
{
    if (c->db && PQstatus(c->db) == CONNECTION_OK && PQtransactionStatus(c->db) != PQTRANS_IDLE) {
        log_error("postgres: connection checked in inside a transaction; rolling back");
        PQclear(PQexec(c->db, "ROLLBACK"));
    }
    store_pool_give(&s->pool, c);
}

/* Statements */

static void params_add(struct params *p, const char *value, int len, int format)
{
    assert(p->n < PARAMS_MAX);
    p->values[p->n] = value;
    p->lengths[p->n] = len;
    p->formats[p->n] = format;
    p->n++;
}

static void params_add_i64(struct params *p, int64_t v)
{
    assert(p->n < PARAMS_MAX);
    (void)snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRId64, v); /* fits: 20 digits */
    params_add(p, p->num[p->n], 0, 0);
}

static void params_add_field(struct params *p, const struct store_field *f, const void *rec)
{
    const struct store_value v = store_field_value(f, rec);

    if (v.is_text)
        params_add(p, v.text, 0, 0);
    else
        params_add_i64(p, v.i64); /* a boolean as 0 or 1, which PostgreSQL reads as one */
}

static void params_add_arg(struct params *p, const struct pg_arg *a)
{
    switch (a->kind) {
    case PG_ARG_TEXT:
        params_add(p, a->text, 0, 0);
        return;
    case PG_ARG_BYTES:
        params_add(p, a->text, (int)a->i64, 1);
        return;
    case PG_ARG_I64:
        params_add_i64(p, a->i64);
        return;
    case PG_ARG_BOOL:
        params_add(p, a->i64 ? "t" : "f", 0, 0);
        return;
    }
}

static void params_build(struct params *p, const struct pg_query *q)
{
    const size_t nfields = q->layout ? q->layout->count : 0;

    p->n = 0;
    for (size_t i = 0; i < nfields; i++) {
        const struct store_field *f = &q->layout->fields[i];
        params_add_field(p, f, q->rec);
    }
    for (size_t i = 0; i < q->nargs; i++)
        params_add_arg(p, &q->args[i]);
}

static void stmt_name(enum pg_stmt id, char *buf, size_t size)
{
    (void)snprintf(buf, size, "subgate_%d", (int)id); /* fits */
}

static enum err stmt_prepare(struct conn *c, enum pg_stmt id)
{
    char name[32];
    PGresult *res;
    enum err err = ERR_OK;

    if (c->prepared[id])
        return ERR_OK;
    stmt_name(id, name, sizeof(name));
    res = PQprepare(c->db, name, pg_stmts[id].sql, 0, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        err = result_err(c, res);
    PQclear(res);
    c->prepared[id] = err == ERR_OK;
    return err;
}

/* Prepares (once per session) and runs id; *out holds the result on success. */
static enum err stmt_exec(struct conn *c, enum pg_stmt id, const struct params *p, PGresult **out)
{
    char name[32];
    enum err err = stmt_prepare(c, id);
    ExecStatusType status;

    *out = NULL;
    if (err)
        return err;
    stmt_name(id, name, sizeof(name));
    *out = PQexecPrepared(c->db, name, p->n, p->values, p->lengths, p->formats, 0);
    status = PQresultStatus(*out);
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
        return ERR_OK;
    err = result_err(c, *out);
    PQclear(*out);
    *out = NULL;
    return err;
}

/* Pipelining: a batch's first statements in one round trip (store_ops.pipeline_*) */

static void pipe_clear(struct pipe *pp)
{
    for (int k = 0; k < PIPE_MAX; k++) {
        PQclear(pp->stmt[k].res); /* NULL is a no-op */
        memset(&pp->stmt[k], 0, sizeof(pp->stmt[k]));
    }
    pp->nparams = 0;
    pp->len = 0;
    pp->capturing = false;
    pp->capture = -1;
    pp->use = -1;
}

/*
 * Records the i-th parameter of p: a text one copied into the pipe's buffer (the caller made
 * sure it fits), a binary one by its pointer.
 */
static void pipe_add_param(struct pipe *pp, const struct params *p, int i)
{
    struct pipe_param *pa = &pp->params[pp->nparams++];
    size_t n;

    memset(pa, 0, sizeof(*pa));
    pa->format = p->formats[i];
    pa->null = p->values[i] == NULL;
    if (pa->null)
        return;
    if (pa->format) {
        pa->bytes = p->values[i];
        pa->len = p->lengths[i];
        return;
    }
    n = strlen(p->values[i]) + 1;
    memcpy(pp->buf + pp->len, p->values[i], n);
    pa->off = pp->len;
    pp->len += n;
}

/* In capture mode: records q if it is the unit's first statement; every statement fails. */
static enum err pipe_record(struct conn *c, const struct pg_query *q)
{
    struct pipe *pp = c->pipe;
    struct pipe_stmt *st = pp->capture >= 0 ? &pp->stmt[pp->capture] : NULL;
    struct params p;
    size_t bytes = 0;

    pp->capture = -1; /* what the function sends after its first statement is not recorded */
    if (!st)
        return ERR_UNAVAILABLE;
    params_build(&p, q);
    for (int i = 0; i < p.n; i++)
        if (p.values[i] && !p.formats[i])
            bytes += strlen(p.values[i]) + 1;
    if (p.n > PIPE_PARAMS - pp->nparams || bytes > PIPE_BYTES - pp->len)
        return ERR_UNAVAILABLE; /* not recorded: that unit's statement runs in its turn */
    st->id = q->id;
    st->first = pp->nparams;
    st->n = p.n;
    for (int i = 0; i < p.n; i++)
        pipe_add_param(pp, &p, i);
    st->recorded = true;
    return ERR_UNAVAILABLE;
}

/* Whether the parameters p of statement id are the ones recorded in st. */
static bool pipe_same(const struct pipe *pp, const struct pipe_stmt *st, enum pg_stmt id,
                      const struct params *p)
{
    if (st->id != id || st->n != p->n)
        return false;
    for (int i = 0; i < p->n; i++) {
        const struct pipe_param *pa = &pp->params[st->first + i];
        const char *v = p->values[i];
        if (pa->null != (v == NULL) || pa->format != p->formats[i])
            return false;
        if (pa->null)
            continue;
        if (pa->format ? pa->len != p->lengths[i] || memcmp(pa->bytes, v, (size_t)pa->len) != 0
                       : strcmp(pp->buf + pa->off, v) != 0)
            return false;
    }
    return true;
}

/*
 * The running unit's first statement: when the pipeline ran exactly this statement for it,
 * *taken is set and the result is the one kept (*out, or the failure it was). Otherwise the
 * statement runs as ever, and the result kept is left untaken (pipeline_use(-1) fails then).
 */
static enum err pipe_take(struct conn *c, const struct pg_query *q, PGresult **out, bool *taken)
{
    struct pipe *pp = c->pipe;
    struct pipe_stmt *st = &pp->stmt[pp->use];
    struct params p;
    ExecStatusType status;
    enum err err;

    pp->use = -1;
    *taken = false;
    if (!st->sent || st->taken)
        return ERR_OK;
    params_build(&p, q);
    if (!pipe_same(pp, st, q->id, &p))
        return ERR_OK;
    *taken = true;
    st->taken = true;
    *out = st->res;
    st->res = NULL;
    status = PQresultStatus(*out); /* of NULL: PGRES_FATAL_ERROR */
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
        return ERR_OK;
    if (status == PGRES_PIPELINE_ABORTED) {
        c->sqlstate[0] = '\0';
        (void)str_copy(c->errmsg, sizeof(c->errmsg), "not run: an earlier statement failed");
        err = ERR_STORE;
    } else {
        err = result_err(c, *out);
    }
    PQclear(*out);
    *out = NULL;
    return err;
}

void pg_db_pipeline_capture(struct store_tx *tx, int k)
{
    struct conn *c = tx->c;

    if (!c->pipe) {
        c->pipe = xcalloc(1, sizeof(*c->pipe));
        pipe_clear(c->pipe);
    }
    if (k < 0) {
        c->pipe->capturing = false;
        c->pipe->capture = -1;
        return;
    }
    if (!c->pipe->capturing) /* a new pass: nothing of the last one is left */
        pipe_clear(c->pipe);
    c->pipe->capturing = true;
    c->pipe->capture = k < PIPE_MAX ? k : -1;
}

/* After a failure inside pipeline mode: the connection is dropped and opened again. */
static enum err pipe_broken(struct conn *c)
{
    conn_note(c, NULL);
    log_warn("postgres: pipeline failed: %s", c->errmsg);
    (void)conn_reset(c); /* the server rolls the transaction back */
    return ERR_UNAVAILABLE;
}

/* Before a pipeline: the connection checked, and what it sends prepared (not allowed in it). */
static enum err pipe_ready(struct conn *c, const struct pipe *pp)
{
    enum err err;

    if (c->op_first) { /* the capture checks it first, as a rule */
        c->op_first = false;
        if ((err = conn_ready(c)))
            return err;
    }
    if (c->begin_pending && (err = stmt_prepare(c, PGS_BEGIN)))
        return err;
    for (int k = 0; k < PIPE_MAX; k++)
        if (pp->stmt[k].recorded && (err = stmt_prepare(c, pp->stmt[k].id)))
            return err;
    return ERR_OK;
}

/* Sends the recorded statements (in pipeline mode); how many went. */
static int pipe_send_recorded(struct conn *c, struct pipe *pp)
{
    const char *values[PARAMS_MAX];
    int lengths[PARAMS_MAX], formats[PARAMS_MAX], sent = 0;
    char name[32];

    for (int k = 0; k < PIPE_MAX; k++) {
        struct pipe_stmt *st = &pp->stmt[k];
        if (!st->recorded)
            continue;
        for (int i = 0; i < st->n; i++) {
            const struct pipe_param *pa = &pp->params[st->first + i];
            values[i] = pa->null ? NULL : pa->format ? pa->bytes : pp->buf + pa->off;
            lengths[i] = pa->len;
            formats[i] = pa->format;
        }
        stmt_name(st->id, name, sizeof(name));
        if (PQsendQueryPrepared(c->db, name, st->n, values, lengths, formats, 0) != 1)
            break;
        st->sent = true;
        sent++;
    }
    return sent;
}

/* A statement's result in pipeline mode (NULL on a lost connection); the rest, to its NULL,
 * dropped. */
static PGresult *pipe_result(struct conn *c)
{
    PGresult *first = PQgetResult(c->db), *res;

    while (first && (res = PQgetResult(c->db)) != NULL)
        PQclear(res);
    return first;
}

/*
 * Sends the recorded statements in one pipeline, after the transaction's BEGIN when it is not
 * sent yet (so a batch's BEGIN costs no round trip of its own), and keeps their results.
 */
enum err pg_db_pipeline_send(struct store_tx *tx, int *sent)
{
    struct conn *c = tx->c;
    struct pipe *pp = c->pipe;
    char name[32];
    bool synced, begin = false, recorded = false;
    PGresult *res, *begun = NULL;
    enum err err;

    *sent = 0;
    for (int k = 0; pp && k < PIPE_MAX; k++)
        recorded |= pp->stmt[k].recorded;
    if (!recorded)
        return ERR_OK; /* a BEGIN not sent goes with the next statement */
    if ((err = pipe_ready(c, pp)))
        return err;
    if (PQenterPipelineMode(c->db) != 1)
        return pipe_broken(c);
    if (c->begin_pending) {
        c->begin_pending = false;
        stmt_name(PGS_BEGIN, name, sizeof(name));
        begin = PQsendQueryPrepared(c->db, name, 0, NULL, NULL, NULL, 0) == 1;
        if (!begin) {
            (void)PQexitPipelineMode(c->db);
            return pipe_broken(c);
        }
    }
    *sent = pipe_send_recorded(c, pp);
    synced = PQpipelineSync(c->db) == 1;
    if (begin)
        begun = pipe_result(c);
    for (int k = 0; k < PIPE_MAX; k++)
        if (pp->stmt[k].sent) /* NULL on a lost connection: a failure when taken */
            pp->stmt[k].res = pipe_result(c);
    if (synced) {
        res = PQgetResult(c->db);
        synced = PQresultStatus(res) == PGRES_PIPELINE_SYNC;
        PQclear(res);
    }
    if (!synced || PQexitPipelineMode(c->db) != 1) {
        PQclear(begun);
        return pipe_broken(c);
    }
    if (begin && PQresultStatus(begun) != PGRES_COMMAND_OK) {
        err = result_err(c, begun); /* the statements after it were not run */
        PQclear(begun);
        return err;
    }
    PQclear(begun);
    for (int k = 0; k < PIPE_MAX; k++) { /* the first failure aborted the transaction */
        const struct pipe_stmt *st = &pp->stmt[k];
        ExecStatusType status = PQresultStatus(st->res);
        if (st->sent && status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
            return result_err(c, st->res);
    }
    return ERR_OK;
}

enum err pg_db_pipeline_use(struct store_tx *tx, int k)
{
    struct pipe *pp = tx->c->pipe;
    bool left = false;

    if (!pp)
        return ERR_OK;
    if (k >= 0) {
        pp->use = k < PIPE_MAX ? k : -1;
        return ERR_OK;
    }
    for (int i = 0; i < PIPE_MAX; i++)
        left |= pp->stmt[i].sent && !pp->stmt[i].taken;
    pipe_clear(pp);
    if (left) {
        log_debug("postgres: a pipelined statement was not sent again by its write");
        return ERR_STORE;
    }
    return ERR_OK;
}

/*
 * Runs q; on success *out holds the result (PQclear it). The first statement of an operation
 * checks the connection first; when it still fails on a lost connection and could not have
 * committed anything (it does not write outside a transaction), the connection is reset and
 * the statement sent once more.
 */
static enum err query_run(struct conn *c, const struct pg_query *q, PGresult **out)
{
    struct params p;
    bool first = c->op_first;
    enum err err = first ? conn_ready(c) : ERR_OK;

    *out = NULL;
    c->op_first = false;
    if (err)
        return err;
    if (c->pipe && c->pipe->capturing)
        return pipe_record(c, q);
    if (c->pipe && c->pipe->use >= 0) {
        bool taken;
        err = pipe_take(c, q, out, &taken);
        if (taken)
            return err;
    }
    params_build(&p, q);
    err = stmt_exec(c, q->id, &p, out);
    if (err == ERR_UNAVAILABLE && first && !pg_stmts[q->id].writes &&
        PQstatus(c->db) != CONNECTION_OK && conn_reset(c) == ERR_OK)
        err = stmt_exec(c, q->id, &p, out);
    return err;
}

/*
 * Sends the pending BEGIN (tx_begin) as the operation's first statement: checked first, and
 * sent once more on a lost connection.
 */
static enum err begin_flush(struct conn *c)
{
    const struct pg_query q = { PGS_BEGIN, NULL, NULL, NULL, 0 };
    PGresult *res = NULL;
    enum err err;

    c->begin_pending = false;
    err = query_run(c, &q, &res);
    PQclear(res);
    return err;
}

/*
 * The pending BEGIN and the statement id in one pipeline, one round trip. Any failure of the
 * pipeline itself resets the connection (the server rolls back what ran) and is
 * ERR_UNAVAILABLE; *fresh then says whether a new session is open.
 */
static enum err begin_pair(struct conn *c, enum pg_stmt id, const struct params *p, PGresult **out,
                           bool *fresh)
{
    char begin[32], name[32];
    PGresult *begun = NULL, *res = NULL, *sync;
    bool ok;
    enum err err;

    if ((err = stmt_prepare(c, PGS_BEGIN)) || (err = stmt_prepare(c, id)))
        return err;
    stmt_name(PGS_BEGIN, begin, sizeof(begin));
    stmt_name(id, name, sizeof(name));
    ok = PQenterPipelineMode(c->db) == 1 &&
         PQsendQueryPrepared(c->db, begin, 0, NULL, NULL, NULL, 0) == 1 &&
         PQsendQueryPrepared(c->db, name, p->n, p->values, p->lengths, p->formats, 0) == 1 &&
         PQpipelineSync(c->db) == 1;
    if (ok) {
        begun = pipe_result(c);
        res = pipe_result(c);
        sync = PQgetResult(c->db);
        ok = PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
        PQclear(sync);
    }
    if (!ok || PQexitPipelineMode(c->db) != 1) {
        PQclear(begun);
        PQclear(res);
        err = pipe_broken(c);
        *fresh = PQstatus(c->db) == CONNECTION_OK;
        return err;
    }
    if (PQresultStatus(begun) != PGRES_COMMAND_OK) {
        err = result_err(c, begun); /* the statement after it was not run */
    } else if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
        err = result_err(c, res);
    } else {
        *out = res;
        res = NULL;
    }
    PQclear(begun);
    PQclear(res);
    return err;
}

/*
 * A transaction's first statement, its BEGIN still to be sent: both in one round trip. The
 * connection is checked first; when the pair fails on a lost connection (not on a statement
 * timeout: the session is still there), nothing can have committed, so after the reset the two
 * go once more, one after the other.
 */
static enum err begin_with(struct conn *c, const struct pg_query *q, PGresult **out)
{
    struct params p;
    bool first = c->op_first, fresh = false;
    enum err err = first ? conn_ready(c) : ERR_OK;

    c->op_first = false;
    if (err) {
        c->begin_pending = false;
        return err;
    }
    if (c->pipe && c->pipe->use >= 0) { /* a pipelined result to take: never with a BEGIN due */
        err = begin_flush(c);
        return err ? err : query_run(c, q, out);
    }
    c->begin_pending = false;
    params_build(&p, q);
    err = begin_pair(c, q->id, &p, out, &fresh);
    if (err == ERR_UNAVAILABLE && first && !fresh && PQstatus(c->db) != CONNECTION_OK)
        fresh = conn_reset(c) == ERR_OK;
    if (err == ERR_UNAVAILABLE && first && fresh) { /* a new session: no transaction in it */
        c->begin_pending = true;
        err = begin_flush(c);
        if (!err)
            err = stmt_exec(c, q->id, &p, out);
    }
    return err;
}

/* query_run, with the transaction's BEGIN when it is still to be sent (not while capturing). */
static enum err query_exec(struct conn *c, const struct pg_query *q, PGresult **out)
{
    *out = NULL;
    if (c->begin_pending && !(c->pipe && c->pipe->capturing))
        return begin_with(c, q, out);
    return query_run(c, q, out);
}

/* Reading results */

/* Reads an integer column (0 when NULL). */
static void read_i64(const PGresult *res, int row, int col, int64_t *out)
{
    const char *v = PQgetvalue(res, row, col);

    *out = 0;
    if (!PQgetisnull(res, row, col) && parse_i64(v, strlen(v), INT64_MIN, INT64_MAX, out))
        log_warn("postgres: column %d is not an integer: '%s'", col, v);
}

static void read_field(const PGresult *res, int row, int col, const struct store_field *f,
                       void *rec)
{
    const char *text = PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);

    if (!store_field_from_text(f, rec, text))
        log_warn("postgres: column '%s' is too long or not an integer: cut or 0", f->name);
}

void pg_db_read_record_at(const PGresult *res, int row, int col, const struct store_record *layout,
                          void *out)
{
    assert(PQnfields(res) >= col + (int)layout->count);
    memset(out, 0, layout->size);
    for (size_t i = 0; i < layout->count; i++) {
        const struct store_field *f = &layout->fields[i];
        assert(strcmp(PQfname(res, col + (int)i), f->name) == 0);
        read_field(res, row, col + (int)i, f, out);
    }
}

/* Reads the first layout->count columns of a row into a record. */
void pg_db_read_record(const PGresult *res, int row, const struct store_record *layout, void *out)
{
    pg_db_read_record_at(res, row, 0, layout, out);
}

/* Runs q, which yields at most one row, into a record: ERR_NOT_FOUND when no row. */
static enum err conn_fetch_record(struct conn *c, const struct pg_query *q,
                                  const struct store_record *layout, void *out)
{
    PGresult *res = NULL;
    enum err err = query_exec(c, q, &res);

    if (err == ERR_OK && PQntuples(res) == 0)
        err = ERR_NOT_FOUND;
    if (err == ERR_OK)
        pg_db_read_record(res, 0, layout, out);
    PQclear(res);
    return err;
}

/* Runs q, which yields at most one row, into an integer: ERR_NOT_FOUND when no row. */
static enum err conn_fetch_i64(struct conn *c, const struct pg_query *q, int64_t *out)
{
    PGresult *res = NULL;
    enum err err = query_exec(c, q, &res);

    if (err == ERR_OK && PQntuples(res) == 0)
        err = ERR_NOT_FOUND;
    if (err == ERR_OK)
        read_i64(res, 0, 0, out);
    PQclear(res);
    return err;
}

/* Runs a write; *changes = rows it changed, when not NULL. */
static enum err conn_write(struct conn *c, const struct pg_query *q, int *changes)
{
    PGresult *res = NULL;
    enum err err = query_exec(c, q, &res);
    int64_t n = 0;

    if (err == ERR_OK && changes) {
        const char *tuples = PQcmdTuples(res);
        if (parse_i64(tuples, strlen(tuples), 0, INT_MAX, &n) != ERR_OK)
            n = 0;
        *changes = (int)n;
    }
    PQclear(res);
    return err;
}

enum err pg_db_query(struct store_tx *tx, const struct pg_query *q, PGresult **res)
{
    return query_exec(tx->c, q, res);
}

enum err pg_db_fetch_record(struct store_tx *tx, const struct pg_query *q,
                            const struct store_record *layout, void *out)
{
    return conn_fetch_record(tx->c, q, layout, out);
}

enum err pg_db_fetch_i64(struct store_tx *tx, const struct pg_query *q, int64_t *out)
{
    return conn_fetch_i64(tx->c, q, out);
}

enum err pg_db_write(struct store_tx *tx, const struct pg_query *q, int *changes)
{
    return conn_write(tx->c, q, changes);
}

enum err pg_db_fetch_list(struct store_tx *tx, const struct pg_query *q,
                          const struct store_record *layout, int max, void *out, int *n)
{
    PGresult *res = NULL;
    enum err err = query_exec(tx->c, q, &res);
    int rows = err ? 0 : PQntuples(res);

    for (int i = 0; i < rows && i < max; i++)
        pg_db_read_record(res, i, layout, (char *)out + (size_t)i * layout->size);
    *n = rows < max ? rows : max;
    PQclear(res);
    return err;
}

enum err pg_db_exec(struct store_tx *tx, const char *sql)
{
    struct conn *c = tx->c;
    PGresult *res;
    ExecStatusType status;
    enum err err;

    if (c->begin_pending && !(c->pipe && c->pipe->capturing) && (err = begin_flush(c)))
        return err;
    err = c->op_first ? conn_ready(c) : ERR_OK;
    c->op_first = false;
    if (err)
        return err;
    if (c->pipe && c->pipe->capturing)
        return ERR_UNAVAILABLE; /* recorded are prepared statements only */
    if (c->pipe)
        c->pipe->use = -1; /* its unit's first statement is another: what was kept is left */
    res = PQexec(c->db, sql);
    status = PQresultStatus(res);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
        err = result_err(c, res);
    PQclear(res);
    return err;
}

bool pg_db_failed_with(const struct store_tx *tx, const char *code)
{
    return sqlstate_is(tx->c, code);
}

/* Transactions */

static enum err conn_simple(struct conn *c, enum pg_stmt id)
{
    const struct pg_query q = { id, NULL, NULL, NULL, 0 };

    return conn_write(c, &q, NULL);
}

/*
 * Begins a transaction: its BEGIN goes with the first statement, in the same round trip
 * (begin_with), or in a batch's pipeline ahead of the statements there, and not at all when no
 * statement follows.
 */
static enum err tx_begin(struct conn *c)
{
    c->sqlstate[0] = '\0'; /* what tx_retryable() reads is this attempt's */
    if (c->pipe)
        pipe_clear(c->pipe);
    c->begin_pending = true;
    return ERR_OK;
}

/* Usage notes: what pg_listen.c NOTIFYs on PG_USAGE_CHANNEL */

static void notes_clear(struct usage_notes *u)
{
    u->len = 0;
    u->users[0] = '\0';
    u->all = false;
    u->extras = false;
}

/* Adds the user id of n bytes, once; everyone when it cannot be named in the payload. */
static void notes_add(struct usage_notes *u, const char *id, size_t n)
{
    const char *p = u->users;
    const char *end = p + u->len;

    if (u->all)
        return;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len == n && memcmp(p, id, n) == 0)
            return;
        p += len + 1;
    }
    if (n == 0 || memchr(id, '\n', n) || u->len + (u->len > 0) + n >= sizeof(u->users)) {
        u->all = true;
        return;
    }
    if (u->len)
        u->users[u->len++] = '\n';
    memcpy(u->users + u->len, id, n);
    u->len += n;
    u->users[u->len] = '\0';
}

static bool notes_empty(const struct usage_notes *u)
{
    return u->len == 0 && !u->all;
}

void pg_db_note_usage(struct store_tx *tx, const char *user_id)
{
    notes_add(&tx->c->notes, user_id, strlen(user_id));
}

void pg_db_note_extras(struct store_tx *tx)
{
    tx->c->notes.extras = true;
}

/*
 * Hands a run's notes to the listener thread, committed or not (a lost COMMIT answer). Only
 * after the run: a notification sent before its commit could let another instance read and
 * keep the value from before it.
 */
static void notes_hand_over(struct pg_store *s, struct conn *c)
{
    const struct usage_notes *from = &c->notes;
    struct usage_notes *to = &s->tell;
    bool was_empty;

    if (s->tell_fd < 0 || notes_empty(from))
        return;
    pthread_mutex_lock(&s->tell_mu);
    was_empty = notes_empty(to);
    to->extras |= from->extras;
    if (from->all)
        to->all = true;
    for (const char *p = from->users, *end = p + from->len; p < end && !to->all;) {
        size_t len = strcspn(p, "\n");
        notes_add(to, p, len);
        p += len + 1;
    }
    pthread_mutex_unlock(&s->tell_mu);
    if (was_empty && write(s->tell_fd, "t", 1) != 1) {
        /* full: a byte already waits there, and one is all it takes */
    }
}

void pg_db_usage_tell_to(struct store *st, int fd)
{
    to_pg(st)->tell_fd = fd;
}

bool pg_db_usage_take(struct store *st, char *payload, bool *extras)
{
    struct pg_store *s = to_pg(st);
    bool any;

    pthread_mutex_lock(&s->tell_mu);
    any = !notes_empty(&s->tell);
    if (any) {
        memcpy(payload, s->tell.all ? "" : s->tell.users, s->tell.all ? 1 : s->tell.len + 1);
        *extras = s->tell.extras;
        notes_clear(&s->tell);
    }
    pthread_mutex_unlock(&s->tell_mu);
    return any;
}

/* Commits when err is ERR_OK, else rolls back; returns the first failure. */
static enum err tx_end(struct conn *c, enum err err)
{
    if (c->begin_pending) { /* nothing was sent: there is no transaction to end */
        c->begin_pending = false;
        return err;
    }
    if (err == ERR_OK && PQtransactionStatus(c->db) != PQTRANS_INTRANS)
        err = ERR_STORE; /* a failed statement went unnoticed: COMMIT would roll back */
    if (err == ERR_OK)
        err = conn_simple(c, PGS_COMMIT);
    if (err != ERR_OK && PQstatus(c->db) == CONNECTION_OK &&
        PQtransactionStatus(c->db) != PQTRANS_IDLE) {
        char state[sizeof(c->sqlstate)];
        memcpy(state, c->sqlstate, sizeof(state));
        (void)!conn_simple(c, PGS_ROLLBACK); /* err already says what failed */
        memcpy(c->sqlstate, state, sizeof(state));
    }
    return err;
}

/* A deadlock victim or serialization failure: the whole transaction may run again. */
static bool tx_retryable(const struct conn *c, enum err err)
{
    return err == ERR_STORE && (sqlstate_is(c, "40P01") || sqlstate_is(c, "40001"));
}

/* Group commit: one savepoint per unit inside the batch's transaction */

enum err pg_db_unit_begin(struct store_tx *tx, bool savepoint)
{
    tx->c->sqlstate[0] = '\0'; /* a failure's state and message are this unit's */
    tx->c->errmsg[0] = '\0';
    return savepoint ? conn_simple(tx->c, PGS_SAVEPOINT) : ERR_OK;
}

/*
 * A failed statement aborts the transaction up to the last savepoint: rolling back to it lets
 * the batch go on. A deadlock victim is rolled back and asked to run again, alone: the locks of
 * the batch's earlier units are still held, so it would meet the same wait.
 */
enum err pg_db_unit_end(struct store_tx *tx, bool savepoint, enum err *unit_err, bool *again,
                        char *errbuf, size_t errlen)
{
    struct conn *c = tx->c;
    /* a BEGIN not sent yet: no statement ran, the transaction is as sound as it will be */
    PGTransactionStatusType ts = c->begin_pending ? PQTRANS_INTRANS : PQtransactionStatus(c->db);
    enum err err;

    *again = false;
    if (*unit_err == ERR_OK && ts != PQTRANS_INTRANS)
        *unit_err = ERR_STORE; /* a failed statement went unnoticed */
    if (*unit_err) {
        *again = tx_retryable(c, *unit_err);
        if ((*unit_err == ERR_STORE || *unit_err == ERR_UNAVAILABLE) && errbuf && errlen &&
            !errbuf[0])
            store_errf(errbuf, errlen, "%s", c->errmsg[0] ? c->errmsg : "database error");
    }
    if ((!c->begin_pending && PQstatus(c->db) != CONNECTION_OK) ||
        (ts != PQTRANS_INTRANS && ts != PQTRANS_INERROR))
        return *unit_err ? *unit_err : ERR_STORE; /* no transaction left to go on with */
    if (!savepoint)
        return ERR_OK;
    if (*unit_err == ERR_OK)
        return conn_simple(c, PGS_RELEASE);
    err = conn_simple(c, PGS_ROLLBACK_TO);
    return err ? err : conn_simple(c, PGS_RELEASE);
}

/* The runner */

enum err pg_db_run(struct store *st, enum store_run_kind kind, store_tx_fn fn, void *arg,
                   char *errbuf, size_t errlen)
{
    struct pg_store *s = to_pg(st);
    struct store_tx tx = { conn_checkout(s) };
    struct conn *c = tx.c;
    enum err err = ERR_STORE;

    notes_clear(&c->notes); /* a retried transaction keeps the notes of its failed tries */
    if (kind != STORE_RUN_WRITE)
        err = fn(&tx, arg);
    for (int i = 0; kind == STORE_RUN_WRITE && i < TX_ATTEMPTS && (i == 0 || tx_retryable(c, err));
         i++) {
        err = tx_begin(c);
        if (!err)
            err = fn(&tx, arg);
        err = tx_end(c, err);
    }
    if ((err == ERR_STORE || err == ERR_UNAVAILABLE) && errbuf && errlen && !errbuf[0])
        store_errf(errbuf, errlen, "%s", c->errmsg[0] ? c->errmsg : "database error");
    notes_hand_over(s, c);
    conn_checkin(s, c);
    return err;
}

/* Opening and closing */

/*
 * libpq takes the user information of a URL up to the first '@' or '/': a password holding a
 * raw '@' or '/' would be read as part of the host, port or database, which libpq's messages
 * echo. Such a URL is refused: every '@' before the query must come before the first '/', and
 * there may be one.
 */
static bool url_userinfo_ok(const char *url)
{
    const char *sep = strstr(url, "://");
    const char *rest = sep ? sep + 3 : url;
    size_t end = strcspn(rest, "?#");
    size_t slash = strcspn(rest, "/");
    int ats = 0;

    for (size_t i = 0; i < end; i++) {
        if (rest[i] != '@')
            continue;
        if (i > slash || ++ats > 1)
            return false;
    }
    return true;
}

static const char *conninfo_value(const PQconninfoOption *opts, const char *key)
{
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, key) == 0)
            return o->val ? o->val : "";
    return "";
}

/*
 * Parses the URL as libpq does; on success *shown is what messages name it by (a new string):
 * user, host, port and database, as libpq read them, never the password nor other options.
 */
static bool url_parse(const char *url, char **shown)
{
    char *msg = NULL;
    PQconninfoOption *opts = url_userinfo_ok(url) ? PQconninfoParse(url, &msg) : NULL;
    const char *user, *port;
    size_t size = strlen(url) + 16;

    PQfreemem(msg); /* it may quote the URL */
    *shown = NULL;
    if (!opts)
        return false;
    user = conninfo_value(opts, "user");
    port = conninfo_value(opts, "port");
    *shown = xmalloc(size);
    (void)snprintf(*shown, size, "postgresql://%s%s%s%s%s/%s", user, user[0] ? "@" : "",
                   conninfo_value(opts, "host"), port[0] ? ":" : "", port,
                   conninfo_value(opts, "dbname")); /* decoded: never longer than url */
    PQconninfoFree(opts);
    return true;
}

const char *pg_db_url(struct store *st)
{
    return to_pg(st)->url;
}

void pg_db_close(struct store *st)
{
    struct pg_store *s = to_pg(st);

    for (int i = 0; i < s->nconns; i++) {
        struct pipe *pp = s->conns[i].pipe;
        PQfinish(s->conns[i].db); /* NULL is a no-op */
        if (pp) {
            pipe_clear(pp);
            free(pp);
        }
    }
    store_pool_release(&s->pool);
    pthread_mutex_destroy(&s->tell_mu);
    free(s->conns);
    free(s->shown);
    free(s->url);
    free(s);
}

static struct pg_store *pg_store_new(char *url, char *shown, int pool_size,
                                     const struct store_ops *ops)
{
    struct pg_store *s = xcalloc(1, sizeof(*s));

    s->base.ops = ops;
    s->url = url;
    s->shown = shown;
    s->nconns = store_pool_size(pool_size);
    s->conns = xcalloc((size_t)s->nconns, sizeof(*s->conns));
    pthread_mutex_init(&s->tell_mu, NULL);
    s->tell_fd = -1;
    store_pool_init(&s->pool, s->nconns);
    for (int i = s->nconns - 1; i >= 0; i--) { /* conns[0], connected at open, lent first */
        s->conns[i].url = s->url;
        store_pool_give(&s->pool, &s->conns[i]);
    }
    return s;
}

enum err pg_db_open(const char *target, int pool_size, const struct store_ops *ops,
                    struct store **out, char *errbuf, size_t errlen)
{
    size_t len = strlen("postgresql://") + strlen(target) + 1;
    char *url = xmalloc(len);
    char *shown = NULL;
    struct pg_store *s;
    enum err err;

    (void)snprintf(url, len, "postgresql://%s", target); /* both schemes name one backend */
    if (!url_parse(url, &shown)) {
        store_errf(
            errbuf, errlen,
            "cannot open database 'postgresql://...': invalid URL (libpq's URI syntax, with '@' "
            "and '/' percent-encoded in the user name and password)");
        free(url);
        return ERR_INVALID;
    }
    s = pg_store_new(url, shown, pool_size, ops);
    err = conn_connect(&s->conns[0]); /* fail now when the server is not there */
    if (err) {
        store_errf(errbuf, errlen, "cannot open database '%s': %s", s->shown, s->conns[0].errmsg);
        pg_db_close(&s->base);
        return err;
    }
    *out = &s->base;
    return ERR_OK;
}
