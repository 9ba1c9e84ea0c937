/*
 * fuzz_gate_normalize.c: libFuzzer target for the gate's path normaliser and matcher
 * (billing/gate), arbitrary bytes as an X-Original-URI. With each treatment of ';' a normalized
 * path starts with '/', is never longer than the input, has no "//", "." or ".." segment, no
 * backslash, control byte or space, only upper-case escapes of reserved bytes, and normalizes to
 * itself (with dot segments kept, it only has no "//"). Matching ignores case by default (the URI
 * and its lower-cased twin fall under the same rules) and a path is never held to less than the
 * rule of its stripped, literal, dots-kept or case-folded form.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "billing/gate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned all_flags[] = {
    0,
    GATE_NORM_STRIP_PARAMS,
    GATE_NORM_KEEP_PARAMS,
    GATE_NORM_KEEP_DOTS,
    GATE_NORM_STRIP_PARAMS | GATE_NORM_KEEP_DOTS,
    GATE_NORM_KEEP_PARAMS | GATE_NORM_KEEP_DOTS,
};

static int hex_upper(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* Aborts unless every byte of a normalized path is allowed and every escape is canonical. */
static void check_bytes(const char *out, unsigned flags)
{
    for (const char *p = out; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c == 0x7f || c == '\\' || c == '?' || c == '#')
            abort();
        if (c == ';' && !(flags & GATE_NORM_KEEP_PARAMS))
            abort();
        if (c == '%' && (!hex_upper(p[1]) || !hex_upper(p[2])))
            abort();
    }
}

static void check_normalize(const char *uri, unsigned flags)
{
    char out[GATE_PATH_MAX], again[GATE_PATH_MAX];
    bool dots = !(flags & GATE_NORM_KEEP_DOTS);
    size_t n;

    if (gate_path_normalize(uri, flags, out, sizeof(out)) != ERR_OK) {
        if (out[0] != '\0')
            abort(); /* a failure leaves an empty string */
        return;
    }
    n = strlen(out);
    if (out[0] != '/' || n > strlen(uri) || strstr(out, "//"))
        abort();
    if (dots &&
        (strstr(out, "/./") || strstr(out, "/../") || (n >= 2 && strcmp(out + n - 2, "/.") == 0) ||
         (n >= 3 && strcmp(out + n - 3, "/..") == 0)))
        abort();
    check_bytes(out, flags);
    if (gate_path_normalize(out, flags, again, sizeof(again)) != ERR_OK || strcmp(out, again) != 0)
        abort(); /* idempotent */
}

static int match_has(const struct gate_match *m, const struct gate_rule *r)
{
    for (size_t i = 0; i < m->count; i++)
        if (m->rules[i] == r)
            return 1;
    return 0;
}

/* The rule of the form of uri that flags give, matched with case_sensitive; NULL for none. */
static const struct gate_rule *form_rule(const struct gate_rules *rules, const char *uri,
                                         unsigned flags, bool case_sensitive)
{
    char path[GATE_PATH_MAX];

    if (gate_path_normalize(uri, flags, path, sizeof(path)) != ERR_OK)
        return NULL;
    return gate_rules_match(rules, path, case_sensitive);
}

/* True when r is NULL (that form has no rule) or one of the rules of m. */
static int covered(const struct gate_match *m, const struct gate_rule *r)
{
    return !r || match_has(m, r);
}

/*
 * The routed form decides whether there is a rule; the rule of every form the app may route
 * the URI as (stripped or literal, exact or case-folded) is among those applied.
 */
static void check_forms(const struct gate_rules *rules, const char *uri, bool cs, bool strip)
{
    unsigned routed = strip ? GATE_NORM_STRIP_PARAMS : 0;
    struct gate_match m;

    if (gate_match_uri(rules, uri, &m) != ERR_OK)
        return;
    if (m.count == 0) {
        if (form_rule(rules, uri, routed, cs))
            abort(); /* the routed form has a rule */
        return;
    }
    if (!match_has(&m, form_rule(rules, uri, routed, cs)) ||
        !covered(&m, form_rule(rules, uri, routed, false)))
        abort(); /* looser than the routed or the case-folded form's rule */
    if (!covered(&m, form_rule(rules, uri, routed | GATE_NORM_KEEP_DOTS, cs)) ||
        !covered(&m, form_rule(rules, uri, routed | GATE_NORM_KEEP_DOTS, false)))
        abort(); /* looser than the rule of the form whose dot segments a router keeps */
    for (unsigned dots = 0; strip && dots <= GATE_NORM_KEEP_DOTS; dots += GATE_NORM_KEEP_DOTS)
        if (!covered(&m, form_rule(rules, uri, GATE_NORM_KEEP_PARAMS | dots, cs)) ||
            !covered(&m, form_rule(rules, uri, GATE_NORM_KEEP_PARAMS | dots, false)))
            abort(); /* looser than the literal form's rule */
}

/* Case-insensitive by default: the lower-cased URI falls under the same rules. */
static void check_fold(const struct gate_rules *rules, const char *uri, const char *lower)
{
    struct gate_match m, ml;
    enum err e = gate_match_uri(rules, uri, &m), el = gate_match_uri(rules, lower, &ml);

    if (el != e || ml.count != m.count || memcmp(ml.rules, m.rules, sizeof(m.rules)) != 0)
        abort();
}

static void check_match(struct gate_rules *rules, const char *uri, const char *lower)
{
    for (int cs = 0; cs < 2; cs++) {
        for (int strip = 0; strip < 2; strip++) {
            rules->options.case_sensitive = cs;
            rules->options.params = strip ? GATE_PARAMS_STRIP : GATE_PARAMS_REFUSE;
            check_forms(rules, uri, cs, strip);
            if (!cs)
                check_fold(rules, uri, lower);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct gate_rules rules; /* large: not on the stack */
    static int ready;
    char *uri = malloc(size + 1), *lower = malloc(size + 1);

    if (!ready) {
        gate_rules_builtin(&rules);
        ready = 1;
    }
    if (!uri || !lower)
        goto out;
    memcpy(uri, data, size);
    uri[size] = '\0';
    for (size_t i = 0; i <= size; i++)
        lower[i] = uri[i] >= 'A' && uri[i] <= 'Z' ? (char)(uri[i] - 'A' + 'a') : uri[i];
    for (size_t i = 0; i < sizeof(all_flags) / sizeof(all_flags[0]); i++)
        check_normalize(uri, all_flags[i]);
    check_match(&rules, uri, lower);
out:
    free(uri);
    free(lower);
    return 0;
}
