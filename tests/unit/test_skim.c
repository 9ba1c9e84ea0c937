/*
 * test_skim.c: stripe/skim.h against its reference (skim_ref.h: jansson's whole tree, filtered):
 * the same tree for valid texts, a refusal for every text jansson refuses; and the webhook
 * parse built on it (stripe_event_parse) against the whole-tree parse for every Stripe
 * fixture wrapped in the event types that carry it, and every event of the fuzz corpus.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/file.h"
#include "skim_ref.h"
#include "stripe/events.h"
#include "stripe/skim.h"
#include "t.h"

/* in strcmp order, as skim.h asks */
static const char *const keep[] = { "a", "data", "id", "k", "n", "object", "s", "é" };

/* Parses text both ways; true when they agree (same tree, or both refuse). */
static bool agree(const char *text, size_t len, bool *valid)
{
    char why[128] = "";
    json_error_t jerr;
    json_t *ref = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *ours = stripe_skim_parse(text, len, keep, ARRAY_SIZE(keep), why, sizeof(why));
    json_t *want = json_is_object(ref) ? skim_ref_filter(ref, keep, ARRAY_SIZE(keep)) : NULL;
    bool same = want ? ours && json_equal(want, ours) : !ours && why[0];

    *valid = want != NULL;
    json_decref(ref);
    json_decref(ours);
    json_decref(want);
    return same;
}

static void test_texts(void)
{
    static const char *const valid[] = {
        "{}",
        " \t\r\n{ } \n",
        "{\"id\":\"evt_1\",\"skip\":{\"deep\":[1,2,{\"x\":null}]},\"n\":-0}",
        "{\"n\":9223372036854775807,\"k\":-9223372036854775808,\"s\":1e-400,\"a\":[1.5e3,-0.0,2E+2]}",
        "{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00 caf\xc3\xa9\",\"\\u00e9\":true}",
        "{\"data\":{\"object\":{\"id\":\"x\",\"other\":\"y\"},\"noise\":[{\"id\":1}]}}",
        "{\"a\":[{\"id\":1,\"z\":2},[],{},[[{\"k\":3}]]]}",
        "{\"x\":\"\xf0\x9f\x98\x80\",\"y\":[true,false,null]}",
    };
    static const char *const invalid[] = {
        "",
        "[]",
        "[1]",
        "\"s\"",
        "1",
        "{",
        "{\"a\":}",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{a:1}",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":+1}",
        "{\"a\":1e}",
        "{\"a\":-}",
        "{\"a\":9223372036854775808}",
        "{\"a\":-9223372036854775809}",
        "{\"a\":1e400}",
        "{\"a\":\"\\u0000\"}",
        "{\"a\":\"\\ud800\"}",
        "{\"a\":\"\\udc00\"}",
        "{\"a\":\"\\ud800\\u0041\"}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12g4\"}",
        "{\"a\":\"\x01\"}",
        "{\"a\":\"\xc3\"}",
        "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xc0\xaf\"}",
        "{\"a\":\"unterminated}",
        "{\"a\":1}x",
        "{\"a\":1} {}",
        "{\"a\":tru}",
        "{\"a\":nul}",
        "{\"id\":1,\"id\":2}",
        "{\"data\":{\"object\":1,\"object\":2}}",
        "{\"a\":[1,]}",
        "{\"a\":[1 2]}",
        "{\"skip\":{\"x\":01}}",
        "{\"skip\":[\"\\ud800\"]}",
        "{\"a\":1\x00}",
    };
    bool valid_flag;

    for (size_t i = 0; i < ARRAY_SIZE(valid); i++) {
        T_OK(agree(valid[i], strlen(valid[i]), &valid_flag), "valid #%zu agrees", i);
        T_OK(valid_flag, "valid #%zu is valid for jansson too", i);
    }
    for (size_t i = 0; i < ARRAY_SIZE(invalid); i++) {
        size_t len = strlen(invalid[i]) + (strcmp(invalid[i], "{\"a\":1") == 0);
        T_OK(agree(invalid[i], len, &valid_flag), "invalid #%zu refused: %s", i, invalid[i]);
        T_OK(!valid_flag, "invalid #%zu is invalid for jansson too", i);
    }
    {
        /* the one documented difference: a duplicate key inside a member that is not built */
        const char *dup = "{\"skip\":{\"dup\":1,\"dup\":2},\"id\":1}";
        char why[128] = "";
        json_t *j = stripe_skim_parse(dup, strlen(dup), keep, ARRAY_SIZE(keep), why, sizeof(why));
        T_OK(j && json_integer_value(json_object_get(j, "id")) == 1 && json_object_size(j) == 1,
             "a duplicate inside a skipped member is not looked for");
        json_decref(j);
    }
    {
        char deep[2 * STRIPE_SKIM_DEPTH_MAX + 16], why[128] = "";
        size_t n = 0;
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"a\":");
        for (int i = 0; i < STRIPE_SKIM_DEPTH_MAX; i++)
            deep[n++] = '[';
        for (int i = 0; i < STRIPE_SKIM_DEPTH_MAX; i++)
            deep[n++] = ']';
        deep[n++] = '}';
        T_OK(!stripe_skim_parse(deep, n, keep, ARRAY_SIZE(keep), why, sizeof(why)) &&
                 strstr(why, "nested too deep"),
             "nesting past the limit is refused: %s", why);
    }
}

/*
 * The word-at-a-time string scan and the duplicate-key table: each byte class that ends a run
 * of plain ASCII (a control character, '"', '\\', a UTF-8 lead byte, a stray continuation or
 * DEL's neighbour 0x7f) at every offset of two words, in a kept and in a skipped value; keys
 * that are duplicates only once decoded; objects of many members; long keys and numbers.
 */
static void test_scan_and_keys(void)
{
    static const char *const cut[] = {
        "\x01", "\x1f", "\"", "\\\\", "\\u0041", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
        "\x80", "\x7f", " ",  "~",    "\xff",    "\\"
    };
    static const char *const texts[] = {
        "{\"id\":1,\"\\u0069d\":2}",
        "{\"data\":{\"object\":1,\"obj\\u0065ct\":2}}",
        "{\"\\u00e9\":1,\"\xc3\xa9\":2}",
        "{\"n\":123456789012345678,\"k\":-123456789012345678,\"a\":[1234567890123456789,-1234567890123456789]}",
        "{\"n\":99999999999999999999,\"skip\":-99999999999999999999}",
        "{\"skip\":18446744073709551616}",
        "{\"n\":-0,\"k\":0,\"a\":[-1,1,-9,9,10,-10]}",
    };
    bool valid;
    size_t agreed = 0, cases = 0;

    for (size_t c = 0; c < ARRAY_SIZE(cut); c++)
        for (size_t at = 0; at < 17; at++)
            for (int where = 0; where < 2; where++) {
                char text[128];
                char pad[18];
                memset(pad, 'x', at);
                pad[at] = '\0';
                (void)snprintf(text, sizeof(text), "{\"%s\":\"%s%sabcdefghijklmnop\"}",
                               where ? "s" : "skip", pad, cut[c]);
                cases++;
                agreed += agree(text, strlen(text), &valid);
            }
    T_EQ_I64((int64_t)agreed, (int64_t)cases,
             "a run-ending byte at every offset: %zu texts agree with jansson", cases);
    for (size_t i = 0; i < ARRAY_SIZE(texts); i++)
        T_OK(agree(texts[i], strlen(texts[i]), &valid), "text #%zu agrees: %s", i, texts[i]);
    T_OK(agree(texts[0], strlen(texts[0]), &valid) && !valid,
         "a key spelled with an escape is a duplicate");

    {
        /* 600 members: the table holds the first 512; a duplicate among them found at the end */
        static char text[32768];
        size_t len;
        for (int dup = 0; dup < 3; dup++) {
            len = (size_t)snprintf(text, sizeof(text), "{");
            for (int i = 0; i < 600; i++)
                len += (size_t)snprintf(text + len, sizeof(text) - len, "%s\"member_%d_%s\":%d",
                                        i ? "," : "", i, i % 2 ? "odd" : "even", i);
            len += (size_t)snprintf(text + len, sizeof(text) - len, "%s,\"id\":7}",
                                    dup == 1   ? ",\"member_3_odd\":1"
                                    : dup == 2 ? ",\"member_51\\u0030_even\":1"
                                               : "");
            T_OK(len < sizeof(text) && agree(text, len, &valid),
                 "600 members, duplicate case %d agrees", dup);
            T_OK(valid == (dup == 0), "600 members, duplicate case %d: valid %d", dup, valid);
        }
        /*
         * Around the point where a built object's keys move from its frame to the heap (32):
         * a duplicate of its first or last key, in a child object nested among a parent's 40
         * members (the parent's keys on the heap while the child's are in its frame).
         */
        int around = 0, around_ok = 0;
        for (int n = 30; n <= 36; n++) {
            for (int dup = -1; dup < n; dup += (dup < 0 ? 1 : n - 1)) {
                len = (size_t)snprintf(text, sizeof(text), "{");
                for (int i = 0; i < 40; i++) {
                    if (i == 20) /* kept, so built: only a built object's keys are checked */
                        len += (size_t)snprintf(text + len, sizeof(text) - len, ",\"data\":");
                    else
                        len += (size_t)snprintf(text + len, sizeof(text) - len,
                                                "%s\"p%d\":", i ? "," : "", i);
                    if (i != 20) {
                        len += (size_t)snprintf(text + len, sizeof(text) - len, "%d", i);
                        continue;
                    }
                    len += (size_t)snprintf(text + len, sizeof(text) - len, "{");
                    for (int j = 0; j < n; j++)
                        len += (size_t)snprintf(text + len, sizeof(text) - len, "%s\"c%d\":%d",
                                                j ? "," : "", j, j);
                    if (dup >= 0)
                        len += (size_t)snprintf(text + len, sizeof(text) - len, ",\"c%d\":0", dup);
                    len += (size_t)snprintf(text + len, sizeof(text) - len, "}");
                }
                len += (size_t)snprintf(text + len, sizeof(text) - len, ",\"id\":7}");
                around++;
                around_ok += len < sizeof(text) && agree(text, len, &valid) && valid == (dup < 0);
            }
        }
        T_EQ_I64(around_ok, around, "objects of 30 to 36 members nested in one of 40: %d agree",
                 around_ok);
        /* keys past the key buffer: equal ones are a duplicate, a shared long prefix is not */
        for (int same = 0; same < 2; same++) {
            char k[301];
            memset(k, 'k', 300);
            k[300] = '\0';
            len = (size_t)snprintf(text, sizeof(text), "{\"%s\":1,\"%s%s\":2}", k, k,
                                   same ? "" : "z");
            T_OK(agree(text, len, &valid) && valid == !same, "300-byte keys, same %d: valid %d",
                 same, valid);
        }
    }
}

/* The whole file at path, NUL-terminated (free it), or NULL. */
static char *read_text(const char *path, size_t *len)
{
    struct buf b;
    char err[256];

    buf_init(&b, (size_t)1 << 20);
    if (file_read_all(path, &b, err, sizeof(err)) != ERR_OK) {
        buf_release(&b);
        return NULL;
    }
    return buf_detach(&b, len);
}

/* Both parses of one event: same outcome, same event, same message unless the JSON is bad. */
static void same_event(const char *body, size_t len, const char *what)
{
    struct billing_event a, b;
    struct stripe_error sa, sb;
    enum err ea, eb;

    memset(&sa, 0, sizeof(sa));
    memset(&sb, 0, sizeof(sb));
    ea = stripe_event_parse(body, len, &a, &sa);
    eb = stripe_event_parse_full(body, len, &b, &sb);
    T_EQ_I64(ea, eb, "%s: same outcome", what);
    if (ea == eb && ea != ERR_INVALID) {
        T_OK(memcmp(&a, &b, sizeof(a)) == 0, "%s: same event", what);
        T_EQ_STR(sa.message, sb.message, "%s: same message", what);
    }
}

static void test_fixture_events(void)
{
    static const struct {
        const char *prefix, *type;
    } wraps[] = {
        { "subscription", "customer.subscription.updated" },
        { "subscription", "customer.subscription.deleted" },
        { "invoice", "invoice.paid" },
        { "invoice", "invoice.payment_failed" },
        { "checkout_session", "checkout.session.completed" },
        { "checkout_session", "checkout.session.expired" },
        { "customer", "customer.created" },
        { "subscription", "customer.subscription.paused" },
        { "subscription_schedule", "subscription_schedule.updated" },
        { "subscription_schedule", "subscription_schedule.released" },
    };

    const char *dir = "tests/fixtures/stripe";
    DIR *d = opendir(dir);
    struct dirent *e;
    int wrapped = 0;

    T_OK(d != NULL, "%s opens (run from the repo root)", dir);
    while (d && (e = readdir(d)) != NULL) {
        char path[512], *text, *body;
        size_t len;
        if (!strstr(e->d_name, ".json"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if ((text = read_text(path, &len)) == NULL)
            continue;
        for (size_t i = 0; i < ARRAY_SIZE(wraps); i++) {
            char what[600];
            if (strncmp(e->d_name, wraps[i].prefix, strlen(wraps[i].prefix)) != 0)
                continue;
            body = malloc(len + 256);
            len = (size_t)snprintf(body, len + 256,
                                   "{\"id\":\"evt_fx\",\"object\":\"event\",\"type\":\"%s\","
                                   "\"created\":1700000000,\"data\":{\"object\":%s}}",
                                   wraps[i].type, text);
            snprintf(what, sizeof(what), "%s as %s", e->d_name, wraps[i].type);
            same_event(body, len, what);
            free(body);
            wrapped++;
        }
        free(text);
    }
    if (d)
        closedir(d);
    T_OK(wrapped >= 10, "%d fixture events compared", wrapped);
}

static void test_corpus_events(void)
{
    const char *dir = "tests/fuzz/corpus/fuzz_events";
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    while (d && (e = readdir(d)) != NULL) {
        char path[512], *text;
        size_t len;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if ((text = read_text(path, &len)) == NULL)
            continue;
        same_event(text, len, e->d_name);
        free(text);
        n++;
    }
    if (d)
        closedir(d);
    T_OK(n >= 5, "%d corpus events compared", n);
}

int main(void)
{
    test_texts();
    test_scan_and_keys();
    test_fixture_events();
    test_corpus_events();
    return t_done();
}
