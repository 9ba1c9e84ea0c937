/*
 * test_gate.c: billing/gate: feature decisions, quota state at window edges (injected now),
 * path normalization, longest-prefix matching and GATE_RULES_FILE validation.
 */
#include <stdio.h>
#include <string.h>

#include "billing/gate.h"
#include "t.h"

/* Times checked with GNU `date -u -d @T`. */
#define T_2024_06_14_235959 INT64_C(1718409599) /* Friday */
#define T_2024_06_15_000000 INT64_C(1718409600) /* Saturday */
#define T_2024_06_16_235959 INT64_C(1718582399) /* Sunday */
#define T_2024_06_17_000000 INT64_C(1718582400) /* Monday */
#define T_2024_02_28_235959 INT64_C(1709164799)
#define T_2024_02_29_000000 INT64_C(1709164800) /* leap day */
#define T_2024_03_01_000000 INT64_C(1709251200)
#define T_2023_03_01_000000 INT64_C(1677628800) /* the day after 2023-02-28 */
#define T_2024_06_01        INT64_C(1717200000)
#define T_2024_07_01        INT64_C(1719792000)

static void test_decide(void)
{
    static const struct {
        const char *tier, *feature;
        bool allowed;
        enum gate_reason reason;
        const char *required; /* NULL: none */
    } rows[] = {
        { "free", "ai_conversation", true, GATE_ALLOWED, "free" },
        { "free", "business_german", false, GATE_NOT_IN_TIER, "plus" },
        { "free", "unlimited_ai", false, GATE_NOT_IN_TIER, "premium" },
        { "premium", "business_german", false, GATE_NOT_IN_TIER, "plus" },
        { "plus", "business_german", true, GATE_ALLOWED, "plus" },
        { "plus", "white_label", false, GATE_NOT_IN_TIER, "enterprise" },
        { "enterprise", "basic_lessons", true, GATE_ALLOWED, "free" },
        { "plus", "teleport", false, GATE_UNKNOWN_FEATURE, NULL },
        { "free", "", false, GATE_UNKNOWN_FEATURE, NULL },
    };
    struct tier_catalog cat;

    tier_catalog_builtin(&cat);
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct gate_decision d =
            gate_decide(&cat, tier_catalog_find(&cat, rows[i].tier), rows[i].feature);
        T_EQ_I64(d.allowed, rows[i].allowed, "%s/%s allowed", rows[i].tier, rows[i].feature);
        T_EQ_STR(gate_reason_name(d.reason), gate_reason_name(rows[i].reason), "%s/%s reason",
                 rows[i].tier, rows[i].feature);
        T_EQ_STR(d.required ? d.required->id : NULL, rows[i].required, "%s/%s required tier",
                 rows[i].tier, rows[i].feature);
    }
}

static void test_quota_state(void)
{
    static const struct {
        const char *what;
        enum quota_window w;
        int64_t limit, used, now;
        int64_t remaining, window_start, resets_at;
    } rows[] = {
        { "day, last second", QUOTA_WINDOW_DAY, 30, 29, T_2024_06_14_235959, 1,
          T_2024_06_14_235959 - 86399, T_2024_06_15_000000 },
        { "day, first second of the next", QUOTA_WINDOW_DAY, 30, 0, T_2024_06_15_000000, 30,
          T_2024_06_15_000000, T_2024_06_15_000000 + 86400 },
        { "week, Sunday 23:59:59", QUOTA_WINDOW_WEEK, 5, 5, T_2024_06_16_235959, 0,
          T_2024_06_17_000000 - 7 * 86400, T_2024_06_17_000000 },
        { "week, Monday 00:00:00", QUOTA_WINDOW_WEEK, 5, 0, T_2024_06_17_000000, 5,
          T_2024_06_17_000000, T_2024_06_17_000000 + 7 * 86400 },
        { "day before a leap day", QUOTA_WINDOW_DAY, 30, 3, T_2024_02_28_235959, 27,
          T_2024_02_29_000000 - 86400, T_2024_02_29_000000 },
        { "leap day resets on March 1", QUOTA_WINDOW_DAY, 30, 0, T_2024_02_29_000000, 30,
          T_2024_02_29_000000, T_2024_03_01_000000 },
        { "2023 has no leap day", QUOTA_WINDOW_DAY, 30, 0, T_2023_03_01_000000 - 1, 30,
          T_2023_03_01_000000 - 86400, T_2023_03_01_000000 },
        { "used past the limit (tracked)", QUOTA_WINDOW_DAY, 30, 45, T_2024_06_15_000000, 0,
          T_2024_06_15_000000, T_2024_06_15_000000 + 86400 },
        { "unlimited", QUOTA_WINDOW_WEEK, TIER_UNLIMITED, 1000, T_2024_06_17_000000, -1,
          T_2024_06_17_000000, T_2024_06_17_000000 + 7 * 86400 },
    };

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct gate_quota_state s = gate_quota_state_of(rows[i].w, (struct quota_period){ 0 },
                                                        rows[i].limit, rows[i].used, rows[i].now);
        T_EQ_I64(s.remaining, rows[i].remaining, "%s: remaining", rows[i].what);
        T_EQ_I64(s.window_start, rows[i].window_start, "%s: window start", rows[i].what);
        T_EQ_I64(s.resets_at, rows[i].resets_at, "%s: resets at", rows[i].what);
        T_EQ_I64(s.used, rows[i].used, "%s: used", rows[i].what);
    }
}

/* Month and billing period windows: the period comes from the caller (zero: none). */
static void test_quota_state_periods(void)
{
    static const struct {
        const char *what;
        enum quota_window w;
        struct quota_period p;
        int64_t now;
        int64_t window_start, resets_at;
        enum quota_window counted;
    } rows[] = {
        { "month of June 2024",
          QUOTA_WINDOW_MONTH,
          { 0 },
          T_2024_06_15_000000,
          T_2024_06_01,
          T_2024_07_01,
          QUOTA_WINDOW_MONTH },
        { "a month quota ignores the period",
          QUOTA_WINDOW_MONTH,
          { T_2024_06_15_000000, T_2024_06_17_000000 },
          T_2024_06_15_000000,
          T_2024_06_01,
          T_2024_07_01,
          QUOTA_WINDOW_MONTH },
        { "billing period holding now",
          QUOTA_WINDOW_BILLING_PERIOD,
          { T_2024_06_15_000000, T_2024_06_17_000000 },
          T_2024_06_16_235959,
          T_2024_06_15_000000,
          T_2024_06_17_000000,
          QUOTA_WINDOW_BILLING_PERIOD },
        { "billing period without a subscription: the month",
          QUOTA_WINDOW_BILLING_PERIOD,
          { 0 },
          T_2024_06_16_235959,
          T_2024_06_01,
          T_2024_07_01,
          QUOTA_WINDOW_MONTH },
    };

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct gate_quota_state s = gate_quota_state_of(rows[i].w, rows[i].p, 10, 4, rows[i].now);
        T_EQ_I64(s.remaining, 6, "%s: remaining", rows[i].what);
        T_EQ_I64(s.window_start, rows[i].window_start, "%s: window start", rows[i].what);
        T_EQ_I64(s.resets_at, rows[i].resets_at, "%s: resets at", rows[i].what);
        T_EQ_STR(quota_window_name(s.counted), quota_window_name(rows[i].counted), "%s: counted",
                 rows[i].what);
    }
}

static void test_normalize(void)
{
    static const struct {
        const char *uri;
        const char *want; /* NULL: ERR_INVALID */
    } rows[] = {
        { "/", "/" },
        { "/api/ai/chat", "/api/ai/chat" },
        { "/api/ai/chat?x=1&y=/../", "/api/ai/chat" },
        { "/api/ai/chat#frag", "/api/ai/chat" },
        { "/api/ai/", "/api/ai/" },
        { "//api///ai//chat", "/api/ai/chat" },
        { "/api/./ai/./chat", "/api/ai/chat" },
        { "/api/free/../business-german/x", "/api/business-german/x" },
        { "/api/free/%2e%2e/business-german/x", "/api/business-german/x" },
        { "/api/%41%7e%2D%5f%2e/x", "/api/A~-_./x" },
        { "/api/%c3%a9t%e9/%3f%23%25", "/api/%C3%A9t%E9/%3F%23%25" },
        { "/api%2Fbusiness-german%2Fx", NULL },
        { "/api/free/%2e%2e%2fbusiness-german/x", NULL },
        { "/api/business-german%5c..%5cx", NULL },
        { "/api\\business-german", NULL },
        { "/api/business-german;/x", NULL },
        { "/api/business-german%3b/x", NULL },
        { "/api/ai/chat\x01", NULL },
        { "/api/ai chat", NULL },
        { "/api/ai/chat\x7f", NULL },
        { "/api/a/..", "/api" },
        { "/api/a/../", "/api/" },
        { "/a/b/../../..", NULL },
        { "/..", NULL },
        { "/%00", NULL },
        { "/%zz", NULL },
        { "/%4", NULL },
        { "/%", NULL },
        { "api/ai", NULL },
        { "", NULL },
        { "?x", NULL },
        { "http://evil/api/ai", NULL },
    };

    char out[GATE_PATH_MAX];

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        enum err err = gate_path_normalize(rows[i].uri, 0, out, sizeof(out));
        T_EQ_I64(err, rows[i].want ? ERR_OK : ERR_INVALID, "normalize '%s' result", rows[i].uri);
        if (rows[i].want)
            T_EQ_STR(out, rows[i].want, "normalize '%s'", rows[i].uri);
    }
    T_EQ_I64(gate_path_normalize("/abcdef", 0, out, 4), ERR_INVALID, "too long for out");
}

/* Path parameters: Tomcat and Spring drop ";..." from each segment before resolving dots. */
static void test_normalize_params(void)
{
    static const struct {
        const char *uri;
        unsigned flags;
        const char *want; /* NULL: ERR_INVALID */
    } rows[] = {
        { "/api/business-german;/x", GATE_NORM_STRIP_PARAMS, "/api/business-german/x" },
        { "/api/business-german;jsessionid=1/x", GATE_NORM_STRIP_PARAMS, "/api/business-german/x" },
        { "/api/free/..;/business-german/x", GATE_NORM_STRIP_PARAMS, "/api/business-german/x" },
        { "/api/ai;x", GATE_NORM_STRIP_PARAMS, "/api/ai" },
        { "/;x/..;y/..", GATE_NORM_STRIP_PARAMS, NULL },
        { "/api/business-german;/x", GATE_NORM_KEEP_PARAMS, "/api/business-german;/x" },
        { "/api/free/..;/business-german/x", GATE_NORM_KEEP_PARAMS,
          "/api/free/..;/business-german/x" },
        { "/api/x%3b/y", GATE_NORM_KEEP_PARAMS, NULL },
        { "/api/x%3b/y", GATE_NORM_STRIP_PARAMS, NULL },
        { "/api/business-german/%2e%2e/x", GATE_NORM_KEEP_DOTS, "/api/business-german/../x" },
        { "//api/./ai//%2E%2e/", GATE_NORM_KEEP_DOTS, "/api/./ai/../" },
        { "/..", GATE_NORM_KEEP_DOTS, "/.." },
        { "/a;x/../b", GATE_NORM_STRIP_PARAMS | GATE_NORM_KEEP_DOTS, "/a/../b" },
        { "/a%2f../b", GATE_NORM_KEEP_DOTS, NULL },
    };

    char out[GATE_PATH_MAX];

    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        enum err err = gate_path_normalize(rows[i].uri, rows[i].flags, out, sizeof(out));
        T_EQ_I64(err, rows[i].want ? ERR_OK : ERR_INVALID, "normalize '%s' (%u) result",
                 rows[i].uri, rows[i].flags);
        if (rows[i].want)
            T_EQ_STR(out, rows[i].want, "normalize '%s' (%u)", rows[i].uri, rows[i].flags);
    }
}

static bool str_copy_test(char *dst, const char *src)
{
    memcpy(dst, src, strlen(src) + 1);
    return true;
}

static void test_match(void)
{
    static const struct {
        const char *path;
        const char *prefix; /* NULL: no rule */
    } rows[] = {
        { "/api/ai/chat", "/api/ai/" },
        { "/api/ai", "/api/ai/" },
        { "/api/ai/", "/api/ai/" },
        { "/api/aix", "/api/" },
        { "/api/scenarios/start", "/api/scenarios/start" },
        { "/api/scenarios/start/2", "/api/scenarios/start" },
        { "/api/scenarios/list", "/api/" },
        { "/api/business-german/lesson/1", "/api/business-german/" },
        { "/api/custom-ai/", "/api/custom-ai/" },
        { "/api", "/api/" },
        { "/", NULL },
        { "/static/app.js", NULL },
        { "/apix", NULL },
    };
    struct gate_rules rules;

    gate_rules_builtin(&rules);
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        const struct gate_rule *r = gate_rules_match(&rules, rows[i].path, true);
        T_EQ_STR(r ? r->prefix : NULL, rows[i].prefix, "match '%s'", rows[i].path);
    }
    /* Found by fuzz_gate: "/api" and "/api/" both cover "/api"; the plain match wins. */
    memset(&rules, 0, sizeof(rules));
    (void)str_copy_test(rules.rules[0].prefix, "/api/");
    (void)str_copy_test(rules.rules[1].prefix, "/api");
    rules.count = 2;
    T_EQ_STR(gate_rules_match(&rules, "/api", true)->prefix, "/api",
             "'/api' beats '/api/' for '/api'");
    T_EQ_STR(gate_rules_match(&rules, "/api/x", true)->prefix, "/api/", "'/api/' for '/api/x'");
    T_EQ_STR(gate_rules_match(&rules, "/apix", true)->prefix, "/api", "'/api' for '/apix'");
}

/*
 * The issue #11 bypasses: with an app whose router ignores case or strips ';' parameters, each
 * variant falls under the rule of the canonical path (every listed rule must pass).
 */
static void test_match_uri(void)
{
    static const struct {
        bool case_sensitive;
        enum gate_params params;
        const char *uri;
        enum err err;
        const char *prefixes; /* the rules, space-separated in match order; "": no rule */
    } rows[] = {
        { false, GATE_PARAMS_REFUSE, "/api/business-german/lesson1", ERR_OK,
          "/api/business-german/" },
        { false, GATE_PARAMS_REFUSE, "/api/Business-German/lesson1", ERR_OK,
          "/api/business-german/" },
        { false, GATE_PARAMS_REFUSE, "/api/CUSTOM-AI/run", ERR_OK, "/api/custom-ai/" },
        { false, GATE_PARAMS_REFUSE, "/api/AI/chat", ERR_OK, "/api/ai/" },
        { false, GATE_PARAMS_REFUSE, "/API/business-german/lesson1", ERR_OK,
          "/api/business-german/" },
        { false, GATE_PARAMS_REFUSE, "/api/%42usiness-german/x", ERR_OK, "/api/business-german/" },
        { false, GATE_PARAMS_REFUSE, "/Api/Scenarios/Start?x", ERR_OK, "/api/scenarios/start" },
        { false, GATE_PARAMS_REFUSE, "/api/business-german;/x", ERR_INVALID, "" },
        { false, GATE_PARAMS_REFUSE, "/static/app.js", ERR_OK, "" },
        { false, GATE_PARAMS_STRIP, "/api/business-german;/x", ERR_OK,
          "/api/business-german/ /api/" },
        { false, GATE_PARAMS_STRIP, "/api/Business-German;v=1/x", ERR_OK,
          "/api/business-german/ /api/" },
        { false, GATE_PARAMS_STRIP, "/api/ai/chat", ERR_OK, "/api/ai/" },
        { false, GATE_PARAMS_STRIP, "/static;x/..;/api/ai/chat", ERR_OK, "/api/ai/" },
        { false, GATE_PARAMS_STRIP, "/api;x/business-german;y/x;z", ERR_OK,
          "/api/business-german/" },
        { false, GATE_PARAMS_STRIP, "/about;x/../static", ERR_OK, "" },
        { true, GATE_PARAMS_REFUSE, "/api/business-german/x", ERR_OK, "/api/business-german/" },
        { true, GATE_PARAMS_REFUSE, "/api/Business-German/x", ERR_OK,
          "/api/ /api/business-german/" },
        { true, GATE_PARAMS_REFUSE, "/API/business-german/x", ERR_OK, "" },
        { true, GATE_PARAMS_STRIP, "/api/AI;x/chat", ERR_OK, "/api/ /api/ai/" },
        { true, GATE_PARAMS_STRIP, "/API;x/ai/chat", ERR_OK, "" },
        /* Express routes "/api/business-german/../x" to its /api/business-german handler. */
        { false, GATE_PARAMS_REFUSE, "/api/business-german/../x", ERR_OK,
          "/api/ /api/business-german/" },
        { false, GATE_PARAMS_REFUSE, "/api/business-german/..", ERR_OK,
          "/api/ /api/business-german/" },
        { false, GATE_PARAMS_REFUSE, "/api/ai/%2E%2e/chat", ERR_OK, "/api/ /api/ai/" },
        { false, GATE_PARAMS_REFUSE, "/api/Custom-AI/.%2e/x", ERR_OK, "/api/ /api/custom-ai/" },
        { false, GATE_PARAMS_REFUSE, "/api/ai/../../x", ERR_OK, "" },
        { false, GATE_PARAMS_STRIP, "/api/business-german;x/../y", ERR_OK,
          "/api/ /api/business-german/" },
        { true, GATE_PARAMS_REFUSE, "/api/Business-German/../x", ERR_OK,
          "/api/ /api/business-german/" },
    };
    struct gate_rules rules;
    struct gate_match m;

    gate_rules_builtin(&rules);
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        char got[256] = "";
        size_t n = 0;
        rules.options.case_sensitive = rows[i].case_sensitive;
        rules.options.params = rows[i].params;
        T_EQ_I64(gate_match_uri(&rules, rows[i].uri, &m), rows[i].err, "match_uri '%s' result",
                 rows[i].uri);
        for (size_t k = 0; k < m.count; k++)
            n += (size_t)snprintf(got + n, sizeof(got) - n, "%s%s", k ? " " : "",
                                  m.rules[k]->prefix);
        T_EQ_STR(got, rows[i].prefixes, "rules of '%s' (case_sensitive %d, params %d)", rows[i].uri,
                 rows[i].case_sensitive, (int)rows[i].params);
    }
}

static void test_parse(void)
{
    static const struct {
        const char *json;
        const char *err; /* NULL: valid */
    } rows[] = {
        { "[]", NULL },
        { "[{\"prefix\":\"/api/ai/\",\"feature\":\"ai_conversation\",\"quota\":\"ai_minutes\","
          "\"amount\":2},{\"prefix\":\"/api/\",\"feature\":null}]",
          NULL },
        { "[{\"prefix\":\"/x\",\"quota\":\"scenarios\"}]", NULL },
        { "{}", "must be a JSON array of rules" },
        { "[1]", "[0]: must be an object" },
        { "[{\"feature\":\"basic_lessons\"}]", "[0]: missing key 'prefix'" },
        { "[{\"prefix\":\"/a\",\"extra\":1}]", "[0]: unknown key 'extra'" },
        { "[{\"prefix\":\"api\"}]", "[0].prefix: must be a normalized path starting with '/'" },
        { "[{\"prefix\":\"/a/../b\"}]", "[0].prefix: must be a normalized path starting with '/'" },
        { "[{\"prefix\":\"/a?b\"}]", "[0].prefix: must be a normalized path starting with '/'" },
        { "[{\"prefix\":\"\"}]", "[0].prefix: must be a non-empty string of at most 255 bytes" },
        { "[{\"prefix\":\"/a\",\"feature\":\"teleport\"}]",
          "[0].feature: no tier has feature 'teleport'" },
        { "[{\"prefix\":\"/a\",\"quota\":\"gpu\"}]", "[0].quota: unknown quota 'gpu'" },
        { "[{\"prefix\":\"/a\",\"quota\":\"scenarios\",\"amount\":0}]",
          "[0].amount: must be 1 to 1000000 with a quota" },
        { "[{\"prefix\":\"/a\",\"quota\":\"scenarios\",\"amount\":1000001}]",
          "[0].amount: must be 1 to 1000000 with a quota" },
        { "[{\"prefix\":\"/a\",\"amount\":3}]", "[0].amount: must be an integer, with a quota" },
        { "[{\"prefix\":\"/a\",\"quota\":\"scenarios\",\"amount\":\"1\"}]",
          "[0].amount: must be an integer, with a quota" },
        { "[{\"prefix\":\"/a\"},{\"prefix\":\"/a\"}]", "[1].prefix: '/a' is also rule [0]" },
        { "[{\"prefix\":\"/api/\"},{\"prefix\":\"/API/\"}]",
          "[1].prefix: '/API/' is also rule [0]" },
        { "[{\"prefix\":\"/a;b\"}]", "[0].prefix: must be a normalized path starting with '/'" },
        { "[{\"prefix\":\"/a\",\"prefix\":\"/b\"}]",
          "line 1 column 24: duplicate object key near '\"prefix\"'" },
        { "[", "line 1 column 1: ']' expected near end of file" },
    };
    struct tier_catalog cat;
    struct gate_rules rules;
    char err[256];

    tier_catalog_builtin(&cat);
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        err[0] = '\0';
        enum err e =
            gate_rules_parse(rows[i].json, strlen(rows[i].json), &cat, &rules, err, sizeof(err));
        T_EQ_I64(e, rows[i].err ? ERR_INVALID : ERR_OK, "parse %s", rows[i].json);
        if (rows[i].err)
            T_EQ_STR(err, rows[i].err, "message of %s", rows[i].json);
        if (rows[i].err)
            T_EQ_I64(rules.count, 0, "emptied after %s", rows[i].json);
    }
    T_EQ_I64(gate_rules_parse(rows[1].json, strlen(rows[1].json), &cat, &rules, err, sizeof(err)),
             ERR_OK, "parse two rules");
    T_EQ_I64(rules.rules[0].amount, 2, "amount kept");
    T_EQ_STR(rules.rules[1].feature, "", "null feature: any signed-in user");
    T_EQ_I64(rules.rules[1].amount, 0, "no quota, no amount");
}

static void test_builtin_valid(void)
{
    struct tier_catalog cat;
    struct gate_rules rules;
    char err[256] = "";

    tier_catalog_builtin(&cat);
    gate_rules_builtin(&rules);
    T_EQ_I64(gate_rules_validate(&rules, &cat, err, sizeof(err)), ERR_OK,
             "built-in rules fit the built-in catalogue (%s)", err);
    T_EQ_STR(gate_reason_name((enum gate_reason)99), "unknown", "unknown reason name");
}

int main(void)
{
    test_decide();
    test_quota_state();
    test_quota_state_periods();
    test_normalize();
    test_normalize_params();
    test_match();
    test_match_uri();
    test_parse();
    test_builtin_valid();
    return t_done();
}
