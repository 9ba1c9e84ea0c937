/* events_cli.c: `subgate events` (list, replay) over the store's webhook inbox. */
#include "api/events_cli.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/webhook.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "store/store.h"

#define EVENTS_CLI_LIMIT_DEFAULT 20
#define USAGE                    "usage: subgate events [--failed] [--limit N] | subgate events replay ID"

static const char *const result_names[] = {
    [STORE_EVENT_APPLIED] = "applied",
    [STORE_EVENT_IGNORED] = "ignored",
    [STORE_EVENT_DUPLICATE] = "duplicate",
};

struct list_args {
    bool failed_only;
    int64_t limit;
};

/* Parses [--failed] [--limit N]; false on anything else. */
static bool parse_list_args(int argc, char **argv, struct list_args *a)
{
    a->failed_only = false;
    a->limit = EVENTS_CLI_LIMIT_DEFAULT;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--failed") == 0)
            a->failed_only = true;
        else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc &&
                 parse_i64(argv[i + 1], strlen(argv[i + 1]), 1, EVENTS_CLI_LIMIT_MAX, &a->limit) ==
                     ERR_OK)
            i++;
        else
            return false;
    }
    return true;
}

/* "2024-01-31T12:00:00Z", or the number when it is out of range. */
static void format_time(int64_t t, char *buf, size_t size)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (!gmtime_r(&tt, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        (void)snprintf(buf, size, "%lld", (long long)t);
}

#define SHOWN_MAX (4 * 256 + 1) /* a stored field (at most 255 bytes) with every byte escaped */

/* s then sep, for the terminal (str_for_terminal): stored text cannot split a row or add a column
 */
static void put_field(FILE *out, const char *s, char sep)
{
    char shown[SHOWN_MAX];

    fputs(str_for_terminal(shown, sizeof(shown), s), out);
    fputc(sep, out);
}

static void print_event(FILE *out, const struct webhook_event *e)
{
    char created[32];

    format_time(e->created, created, sizeof(created));
    put_field(out, e->id, '\t');
    put_field(out, e->type, '\t');
    fprintf(out, "%s\t%s\t%d\t", created, e->status, e->attempts);
    put_field(out, e->last_error, '\n');
}

static int list_events(struct store *st, const struct list_args *a, FILE *out, FILE *err)
{
    struct webhook_event *list = xcalloc((size_t)a->limit, sizeof(*list));
    int n = 0;
    enum err e = store_event_list(st, a->failed_only, (int)a->limit, list, &n);

    if (e) {
        fprintf(err, "subgate: cannot list events: %s\n", err_name(e));
        free(list);
        return 1;
    }
    fprintf(out, "# id\ttype\tcreated\tstatus\tattempts\tlast_error\n");
    for (int i = 0; i < n; i++)
        print_event(out, &list[i]);
    if (n == 0)
        fprintf(out, "# no %sevents\n", a->failed_only ? "failed " : "");
    free(list);
    return 0;
}

static int replay_event(struct store *st, const struct tier_catalog *cat, const char *id, FILE *out,
                        FILE *err)
{
    struct webhook_event ev;
    struct webhook_outcome o;
    char shown[SHOWN_MAX], why[4 * sizeof(o.message) + 1];
    char *raw = NULL;
    size_t len = 0;
    enum err e = store_event_get_raw(st, id, &ev, &raw, &len);

    if (e) {
        fprintf(err, "subgate: cannot replay event '%s': %s\n",
                str_for_terminal(shown, sizeof(shown), id),
                e == ERR_NOT_FOUND ? "no such event" : err_name(e));
        return 1;
    }
    e = webhook_ingest(st, cat, raw, len, STORE_EVENT_REPLAY, &o);
    free(raw);
    if (e) {
        fprintf(err, "subgate: replaying event '%s' failed: %s\n",
                str_for_terminal(shown, sizeof(shown), id),
                str_for_terminal(why, sizeof(why), o.message));
        return 1;
    }
    fputs("replayed ", out);
    put_field(out, id, ' ');
    fputc('(', out);
    put_field(out, o.type, ')');
    fprintf(out, ": %s\n", result_names[o.result]);
    return 0;
}

int events_cli_run(struct store *st, const struct tier_catalog *cat, int argc, char **argv,
                   FILE *out, FILE *err)
{
    struct list_args a;

    if (argc >= 2 && strcmp(argv[1], "replay") == 0) {
        if (argc != 3 || !argv[2][0]) {
            fprintf(err, "%s\n", USAGE);
            return 2;
        }
        return replay_event(st, cat, argv[2], out, err);
    }
    if (!parse_list_args(argc, argv, &a)) {
        fprintf(err, "%s\n", USAGE);
        return 2;
    }
    return list_events(st, &a, out, err);
}
