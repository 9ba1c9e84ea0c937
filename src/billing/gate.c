/* gate.c: feature decisions, quota state and gate rules (SPEC §4); pure, no clock, no I/O. */
#include "billing/gate.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "base/str.h"

static const char *const reason_names[] = {
    [GATE_ALLOWED] = "allowed",
    [GATE_NOT_IN_TIER] = "not_in_tier",
    [GATE_UNKNOWN_FEATURE] = "unknown_feature",
    [GATE_QUOTA_EXCEEDED] = "quota_exceeded",
    [GATE_NO_RULE] = "no_rule",
    [GATE_BAD_PATH] = "bad_path",
    [GATE_UNAUTHENTICATED] = "unauthenticated",
    [GATE_ERROR] = "error",
};

/* clang-format off */
static const struct gate_rule builtin_rules[] = {
    { .prefix = "/api/", .feature = "" },
    { .prefix = "/api/ai/", .feature = "ai_conversation", .quota = "ai_minutes", .amount = 1 },
    { .prefix = "/api/scenarios/start", .feature = "basic_lessons", .quota = "scenarios",
      .amount = 1 },
    { .prefix = "/api/business-german/", .feature = "business_german" },
    { .prefix = "/api/custom-ai/", .feature = "custom_ai" },
};

/* clang-format on */

/* The keys of one rule object. */
static const char *const rule_keys[] = { "prefix", "feature", "quota", "amount" };

struct gate_decision gate_decide(const struct tier_catalog *cat, const struct tier *t,
                                 const char *feature)
{
    struct gate_decision d = { false, GATE_UNKNOWN_FEATURE, NULL };

    d.required = tier_catalog_lowest_with_feature(cat, feature);
    if (!d.required)
        return d;
    d.allowed = tier_has_feature(t, feature);
    d.reason = d.allowed ? GATE_ALLOWED : GATE_NOT_IN_TIER;
    return d;
}

struct gate_quota_state gate_quota_state_of(enum quota_window w, struct quota_period p,
                                            int64_t limit, int64_t used, int64_t now)
{
    struct gate_quota_state s = { .used = used, .limit = limit };
    struct quota_span span = quota_span_of(w, p, now);

    s.remaining = quota_remaining(limit, used);
    s.window_start = span.start;
    s.resets_at = span.end;
    s.counted = span.counted;
    return s;
}

void gate_quota_state_extra(struct gate_quota_state *s, int64_t extra, int64_t balance)
{
    s->extra = extra;
    s->balance = balance;
    s->remaining = quota_remaining_extra(s->limit, extra, balance, s->used);
}

const char *gate_reason_name(enum gate_reason r)
{
    if ((size_t)r < ARRAY_SIZE(reason_names) && reason_names[r])
        return reason_names[r];
    return "unknown";
}

void gate_rules_builtin(struct gate_rules *out)
{
    memset(out, 0, sizeof(*out));
    out->count = ARRAY_SIZE(builtin_rules);
    memcpy(out->rules, builtin_rules, sizeof(builtin_rules));
}

/* Path normalization */

static bool is_unreserved(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/*
 * Reads the escape at uri[i] ('%'): decodes an unreserved character, keeps any other as "%XX"
 * (upper-case hex) in out at *n. Returns the bytes consumed (3), 0 for a bad or refused escape.
 */
static size_t escape_copy(const char *uri, size_t i, size_t len, char *out, size_t *n)
{
    static const char hex[] = "0123456789ABCDEF";
    int hi = i + 2 < len ? str_hex_digit(uri[i + 1]) : -1;
    int lo = hi >= 0 ? str_hex_digit(uri[i + 2]) : -1;
    int c = hi * 16 + lo;

    if (lo < 0 || c == 0 || c == '/' || c == '\\' || c == ';')
        return 0;
    if (is_unreserved(c)) {
        out[(*n)++] = (char)c;
    } else {
        out[(*n)++] = '%';
        out[(*n)++] = hex[hi];
        out[(*n)++] = hex[lo];
    }
    return 3;
}

/*
 * Copies uri[0..len) into out[outlen] decoding unreserved escapes; a ';' is refused, kept or
 * dropped with the rest of its segment, by flags. Refuses control bytes, space and backslash.
 */
static enum err path_decode(const char *uri, size_t len, unsigned flags, char *out, size_t outlen)
{
    size_t n = 0, i = 0;

    while (i < len) {
        unsigned char c = (unsigned char)uri[i];
        if (n + 3 >= outlen || c <= 0x20 || c == 0x7f || c == '\\')
            return ERR_INVALID;
        if (c == ';' && (flags & GATE_NORM_STRIP_PARAMS)) {
            while (i < len && uri[i] != '/')
                i++;
        } else if (c == ';' && !(flags & GATE_NORM_KEEP_PARAMS)) {
            return ERR_INVALID;
        } else if (c == '%') {
            size_t used = escape_copy(uri, i, len, out, &n);
            if (used == 0)
                return ERR_INVALID;
            i += used;
        } else {
            out[n++] = (char)c;
            i++;
        }
    }
    out[n] = '\0';
    return ERR_OK;
}

/*
 * Appends segment <seg, len> to the normalized path out (length *n), resolving "." and ".."
 * unless flags keep them (GATE_NORM_KEEP_DOTS).
 */
static enum err segment_push(char *out, size_t *n, const char *seg, size_t len, unsigned flags)
{
    bool resolve = !(flags & GATE_NORM_KEEP_DOTS);

    if (len == 0 || (resolve && len == 1 && seg[0] == '.'))
        return ERR_OK;
    if (resolve && len == 2 && seg[0] == '.' && seg[1] == '.') {
        if (*n == 0)
            return ERR_INVALID; /* above the root */
        while (*n > 0 && out[*n - 1] != '/')
            (*n)--;
        (*n)--; /* the slash before the dropped segment */
        return ERR_OK;
    }
    out[(*n)++] = '/';
    memmove(out + *n, seg, len); /* may overlap: normalizing in place */
    *n += len;
    return ERR_OK;
}

/* Normalizes the decoded path p in place with flags (the result is never longer). */
static enum err segments_normalize(char *p, unsigned flags)
{
    size_t len = strlen(p), n = 0, i = 0;
    bool trailing = len > 1 && p[len - 1] == '/';
    char *seg = NULL;

    while (i < len) {
        size_t start = ++i; /* past a '/' */
        while (i < len && p[i] != '/')
            i++;
        seg = p + start; /* segment_push writes behind the read position */
        if (segment_push(p, &n, seg, i - start, flags))
            return ERR_INVALID;
    }
    if (n == 0 || trailing)
        p[n++] = '/';
    p[n] = '\0';
    return ERR_OK;
}

enum err gate_path_normalize(const char *uri, unsigned flags, char *out, size_t outlen)
{
    size_t len = strcspn(uri, "?#");

    if (outlen == 0)
        return ERR_INVALID;
    out[0] = '\0';
    if (len == 0 || uri[0] != '/' || path_decode(uri, len, flags, out, outlen) != ERR_OK ||
        out[0] != '/' || segments_normalize(out, flags) != ERR_OK) {
        out[0] = '\0';
        return ERR_INVALID;
    }
    return ERR_OK;
}

/* Matching */

/* strncmp, or its ASCII case-insensitive twin. */
static bool prefix_eq(const char *a, const char *b, size_t n, bool case_sensitive)
{
    return case_sensitive ? strncmp(a, b, n) == 0 : strncasecmp(a, b, n) == 0;
}

/*
 * How much of path prefix covers: its length for a plain match, its length - 1 when a prefix
 * ending in '/' matches the path without that slash, -1 when it does not match.
 */
static long match_len(const char *prefix, const char *path, bool case_sensitive)
{
    size_t plen = strlen(prefix);

    if (prefix_eq(path, prefix, plen, case_sensitive))
        return (long)plen;
    if (plen > 1 && prefix[plen - 1] == '/' && strlen(path) == plen - 1 &&
        prefix_eq(path, prefix, plen - 1, case_sensitive))
        return (long)plen - 1;
    return -1;
}

const struct gate_rule *gate_rules_match(const struct gate_rules *rules, const char *path,
                                         bool case_sensitive)
{
    const struct gate_rule *best = NULL;
    long best_len = -1;

    /* Longest wins; on a tie ("/api" and "/api/" for "/api") the plain match, seen as longer. */
    for (size_t i = 0; i < rules->count; i++) {
        const struct gate_rule *r = &rules->rules[i];
        long n = match_len(r->prefix, path, case_sensitive);
        long score = n < 0 ? -1 : 2 * n + (n == (long)strlen(r->prefix));
        if (score > best_len) {
            best = r;
            best_len = score;
        }
    }
    return best;
}

/* Adds r to m unless it is NULL or there already. */
static void match_add(struct gate_match *m, const struct gate_rule *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < m->count; i++)
        if (m->rules[i] == r)
            return;
    assert(m->count < GATE_FORMS_MAX); /* 4 forms (params, dots) x 2 matches (case) */
    m->rules[m->count++] = r;
}

/*
 * Adds to m the rules of the form of uri that flags give: matched as the app routes it (exactly
 * when case_sensitive) and, for a case-sensitive app, case-folded too. ERR_INVALID when the form
 * does not normalize; ERR_NOT_FOUND when it is the routed form (primary) and has no rule.
 */
static enum err match_form(const struct gate_rules *rules, const char *uri, unsigned flags,
                           bool primary, struct gate_match *m)
{
    char path[GATE_PATH_MAX];
    bool cs = rules->options.case_sensitive;
    const struct gate_rule *r;

    if (gate_path_normalize(uri, flags, path, sizeof(path)) != ERR_OK)
        return ERR_INVALID;
    r = gate_rules_match(rules, path, cs);
    if (!r && primary)
        return ERR_NOT_FOUND;
    match_add(m, r);
    if (cs)
        match_add(m, gate_rules_match(rules, path, false));
    return ERR_OK;
}

enum err gate_match_uri(const struct gate_rules *rules, const char *uri, struct gate_match *out)
{
    bool strip = rules->options.params == GATE_PARAMS_STRIP;
    unsigned routed = strip ? GATE_NORM_STRIP_PARAMS : 0;
    enum err err;

    memset(out, 0, sizeof(*out));
    err = match_form(rules, uri, routed, true, out);
    if (err == ERR_OK) /* a router that leaves dot segments alone ("/api/plus/../x") */
        err = match_form(rules, uri, routed | GATE_NORM_KEEP_DOTS, false, out);
    if (err == ERR_OK && strip)
        err = match_form(rules, uri, GATE_NORM_KEEP_PARAMS, false, out);
    if (err == ERR_OK && strip)
        err = match_form(rules, uri, GATE_NORM_KEEP_PARAMS | GATE_NORM_KEEP_DOTS, false, out);
    if (err != ERR_OK)
        memset(out, 0, sizeof(*out)); /* the routed form has no rule: none */
    return err == ERR_INVALID ? ERR_INVALID : ERR_OK;
}

/* Validation and parsing */

static enum err failf(char *errbuf, size_t errlen, const char *fmt, ...) PRINTF_LIKE(3, 4);

static enum err failf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errlen > 0) {
        va_start(ap, fmt);
        (void)vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return ERR_INVALID;
}

static enum err rule_validate(const struct gate_rule *r, size_t i, const struct tier_catalog *cat,
                              char *errbuf, size_t errlen)
{
    char norm[GATE_PATH_MAX];

    if (gate_path_normalize(r->prefix, 0, norm, sizeof(norm)) != ERR_OK ||
        strcmp(norm, r->prefix) != 0 || strpbrk(r->prefix, "%?#"))
        return failf(errbuf, errlen, "[%zu].prefix: must be a normalized path starting with '/'",
                     i);
    if (r->feature[0] && !tier_catalog_lowest_with_feature(cat, r->feature))
        return failf(errbuf, errlen, "[%zu].feature: no tier has feature '%s'", i, r->feature);
    if (r->quota[0] && tier_catalog_quota_index(cat, r->quota) < 0)
        return failf(errbuf, errlen, "[%zu].quota: unknown quota '%s'", i, r->quota);
    if (r->quota[0] ? r->amount < 1 || r->amount > GATE_AMOUNT_MAX : r->amount != 0)
        return failf(errbuf, errlen, "[%zu].amount: must be 1 to %" PRId64 " with a quota", i,
                     GATE_AMOUNT_MAX);
    return ERR_OK;
}

enum err gate_rules_validate(const struct gate_rules *rules, const struct tier_catalog *cat,
                             char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < rules->count; i++) {
        if (rule_validate(&rules->rules[i], i, cat, errbuf, errlen) != ERR_OK)
            return ERR_INVALID;
        for (size_t j = 0; j < i; j++)
            if (strcasecmp(rules->rules[j].prefix, rules->rules[i].prefix) == 0)
                return failf(errbuf, errlen, "[%zu].prefix: '%s' is also rule [%zu]", i,
                             rules->rules[i].prefix, j);
    }
    return ERR_OK;
}

/* Copies the string member key of o (absent or null: "") into dst[size]. */
static enum err read_string(const json_t *o, size_t i, const char *key, char *dst, size_t size,
                            char *errbuf, size_t errlen)
{
    const json_t *v = json_object_get(o, key);

    dst[0] = '\0';
    if (!v || json_is_null(v))
        return ERR_OK;
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        !str_copy(dst, size, json_string_value(v)))
        return failf(errbuf, errlen, "[%zu].%s: must be a non-empty string of at most %zu bytes", i,
                     key, size - 1);
    return ERR_OK;
}

static enum err check_keys(json_t *o, size_t i, char *errbuf, size_t errlen)
{
    const char *key;
    json_t *v;

    json_object_foreach(o, key, v)
    {
        size_t k = 0;
        while (k < ARRAY_SIZE(rule_keys) && strcmp(rule_keys[k], key) != 0)
            k++;
        if (k == ARRAY_SIZE(rule_keys))
            return failf(errbuf, errlen, "[%zu]: unknown key '%s'", i, key);
    }
    return ERR_OK;
}

static enum err read_amount(const json_t *o, size_t i, struct gate_rule *r, char *errbuf,
                            size_t errlen)
{
    const json_t *v = json_object_get(o, "amount");

    r->amount = r->quota[0] ? 1 : 0;
    if (!v)
        return ERR_OK;
    if (!json_is_integer(v) || !r->quota[0])
        return failf(errbuf, errlen, "[%zu].amount: must be an integer, with a quota", i);
    r->amount = (int64_t)json_integer_value(v);
    return ERR_OK;
}

static enum err read_rule(json_t *o, size_t i, struct gate_rule *r, char *errbuf, size_t errlen)
{
    enum err err;

    if (!json_is_object(o))
        return failf(errbuf, errlen, "[%zu]: must be an object", i);
    if (!json_object_get(o, "prefix"))
        return failf(errbuf, errlen, "[%zu]: missing key 'prefix'", i);
    if ((err = check_keys(o, i, errbuf, errlen)) ||
        (err = read_string(o, i, "prefix", r->prefix, sizeof(r->prefix), errbuf, errlen)) ||
        (err = read_string(o, i, "feature", r->feature, sizeof(r->feature), errbuf, errlen)) ||
        (err = read_string(o, i, "quota", r->quota, sizeof(r->quota), errbuf, errlen)))
        return err;
    return read_amount(o, i, r, errbuf, errlen);
}

static enum err read_rules(const json_t *root, struct gate_rules *out, char *errbuf, size_t errlen)
{
    if (!json_is_array(root))
        return failf(errbuf, errlen, "must be a JSON array of rules");
    if (json_array_size(root) > GATE_RULES_MAX)
        return failf(errbuf, errlen, "at most %d rules", GATE_RULES_MAX);
    for (size_t i = 0; i < json_array_size(root); i++) {
        if (read_rule(json_array_get(root, i), i, &out->rules[i], errbuf, errlen) != ERR_OK)
            return ERR_INVALID;
        out->count = i + 1;
    }
    return ERR_OK;
}

enum err gate_rules_parse(const char *json, size_t len, const struct tier_catalog *cat,
                          struct gate_rules *out, char *errbuf, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    enum err err;

    memset(out, 0, sizeof(*out));
    if (!root)
        return failf(errbuf, errlen, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
    err = read_rules(root, out, errbuf, errlen);
    json_decref(root);
    if (!err)
        err = gate_rules_validate(out, cat, errbuf, errlen);
    if (err)
        memset(out, 0, sizeof(*out));
    return err;
}
