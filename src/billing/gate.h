/*
 * gate.h: the access rules of SPEC §4, pure: may a tier use a feature, how much of a quota is
 * left in its window, and which gate rule (GATE_RULES_FILE) a request path falls under.
 * Part of billing/: no I/O, no clock; callers pass now and the catalogue.
 */
#ifndef SUBGATE_BILLING_GATE_H
#define SUBGATE_BILLING_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "base/err.h"
#include "billing/tiers.h"

#define GATE_RULES_MAX  64   /* rules in one file */
#define GATE_PREFIX_MAX 256  /* bytes of a rule's prefix, terminator included */
#define GATE_PATH_MAX   2048 /* bytes of a normalized request path, terminator included */
#define GATE_AMOUNT_MAX INT64_C(1000000) /* units one request may consume or track */
#define GATE_FORMS_MAX  8                /* rules one request can fall under (see gate_match_uri) */

/* Why access was or was not given; each has a stable name (X-Subgate-Reason, "reason"). */
enum gate_reason {
    GATE_ALLOWED,         /* the tier has the feature (and the quota had room) */
    GATE_NOT_IN_TIER,     /* the tier lacks the feature; a higher tier has it */
    GATE_UNKNOWN_FEATURE, /* no tier of the catalogue has the feature */
    GATE_QUOTA_EXCEEDED,  /* the quota of the window is used up */
    GATE_NO_RULE,         /* the gate has no rule for the path: refused by default */
    GATE_BAD_PATH,        /* the path does not normalize (bad escape, ".." above the root) */
    GATE_UNAUTHENTICATED, /* no valid user token */
    GATE_ERROR,           /* subgate could not decide (database failure): refused */
};

/* The answer to "may a user of tier t use feature f?". */
struct gate_decision {
    bool allowed;
    enum gate_reason reason;     /* GATE_ALLOWED, GATE_NOT_IN_TIER or GATE_UNKNOWN_FEATURE */
    const struct tier *required; /* the lowest tier with the feature; NULL when none */
};

/* A quota's state for one user in the window holding now. */
struct gate_quota_state {
    int64_t used;
    int64_t limit;     /* TIER_UNLIMITED (< 0) when unlimited */
    int64_t remaining; /* limit + extra - used (never negative) + balance; -1 when unlimited */
    int64_t extra;     /* units granted on top of limit for this window (issue #15) */
    int64_t balance;   /* the quota's balance, drawn on once limit + extra are used */
    int64_t window_start;
    int64_t resets_at;         /* the next window's start */
    enum quota_window counted; /* the quota's window, or the month it falls back to */
};

/* One rule: requests whose path starts with prefix need feature and consume amount of quota. */
struct gate_rule {
    char prefix[GATE_PREFIX_MAX]; /* normalized, starts with '/' */
    char feature[FEATURE_ID_MAX]; /* "": any signed-in user */
    char quota[QUOTA_ID_MAX];     /* "": nothing is consumed */
    int64_t amount;               /* units per request, 1..GATE_AMOUNT_MAX; 0 without a quota */
};

/* What the app's router does with ';' path parameters (GATE_PATH_PARAMS). */
enum gate_params {
    GATE_PARAMS_REFUSE, /* a path with ';' is refused (bad_path) */
    GATE_PARAMS_STRIP,  /* the router drops ";..." from each segment, as Tomcat and Spring do */
};

/* How request paths are read against the rules; all zero is the safe default. */
struct gate_options {
    bool case_sensitive;     /* GATE_CASE_SENSITIVE: the app's router tells case apart */
    enum gate_params params; /* GATE_PATH_PARAMS */
};

/* A value struct: copy it freely, nothing to free. */
struct gate_rules {
    size_t count;
    struct gate_rule rules[GATE_RULES_MAX];
    struct gate_options options; /* zero after parsing: case-insensitive, ';' refused */
};

/* The rules a request falls under: it must pass every one of them. */
struct gate_match {
    size_t count; /* 0: no rule */
    const struct gate_rule *rules[GATE_FORMS_MAX];
};

/* gate_path_normalize's treatment of ';' (path parameters) and of dot segments. */
enum gate_norm_flags {
    GATE_NORM_STRIP_PARAMS = 1 << 0, /* drop ";..." up to the next '/' before resolving dots */
    GATE_NORM_KEEP_PARAMS = 1 << 1,  /* ';' is an ordinary byte */
    GATE_NORM_KEEP_DOTS = 1 << 2,    /* "." and ".." are ordinary segments, as Express reads them */
};

/* Decides whether tier t (never NULL) may use feature in catalogue cat. */
struct gate_decision gate_decide(const struct tier_catalog *cat, const struct tier *t,
                                 const char *feature);

/*
 * The state of a quota of window w with this limit after used units, at time now; p is the
 * user's live subscription's current period (zero: none), followed by a billing period window.
 */
struct gate_quota_state gate_quota_state_of(enum quota_window w, struct quota_period p,
                                            int64_t limit, int64_t used, int64_t now);

/* s with the window's extra units and the balance: remaining counts them. */
void gate_quota_state_extra(struct gate_quota_state *s, int64_t extra, int64_t balance);

/* Returns the reason's stable name ("allowed", "not_in_tier", ...). */
const char *gate_reason_name(enum gate_reason r);

/*
 * Fills *out with the rules of the built-in catalogue's example app: /api/ai/ needs
 * ai_conversation and consumes 1 ai_minutes, /api/scenarios/start needs basic_lessons and
 * consumes 1 scenarios, /api/business-german/ needs business_german, /api/custom-ai/ needs
 * custom_ai, and anything else under /api/ needs a signed-in user.
 */
void gate_rules_builtin(struct gate_rules *out);

/*
 * Parses and validates a GATE_RULES_FILE body of len bytes: a JSON array of
 * {"prefix", "feature"?, "quota"?, "amount"?} objects (feature null or absent: any signed-in
 * user; amount defaults to 1 when a quota is named). Every feature and quota must exist in cat,
 * prefixes must be normalized paths and distinct, ignoring case. On error returns ERR_INVALID,
 * empties *out and writes one line to errbuf naming the element ("[2].quota: unknown quota
 * 'minutes'").
 */
MUST_CHECK enum err gate_rules_parse(const char *json, size_t len, const struct tier_catalog *cat,
                                     struct gate_rules *out, char *errbuf, size_t errlen);

/* Checks rules against cat as gate_rules_parse does (for the built-in rules). */
MUST_CHECK enum err gate_rules_validate(const struct gate_rules *rules,
                                        const struct tier_catalog *cat, char *errbuf,
                                        size_t errlen);

/*
 * Returns the rule with the longest prefix of path (a normalized path), or NULL; ASCII case is
 * ignored unless case_sensitive. A prefix that ends in '/' also matches the path without that
 * slash ("/api/ai/" matches "/api/ai").
 */
const struct gate_rule *gate_rules_match(const struct gate_rules *rules, const char *path,
                                         bool case_sensitive);

/*
 * Normalizes a request URI as nginx passes it ($request_uri) into out[outlen], the way
 * RFC 3986 §6.2.2 does: drops the query and fragment; decodes escapes of unreserved characters
 * (letters, digits, '-', '.', '_', '~') and writes every other escape with upper-case hex;
 * merges repeated slashes and resolves "." and ".." segments unless flags keep them. A ';' is
 * refused unless flags (enum gate_norm_flags) strip or keep it. ERR_INVALID for a URI not
 * starting with '/', a control byte, space or backslash, a bad escape or one of NUL, '/', '\' or
 * ';' (whose meaning differs between routers), ".." above the root (when resolved), or a result
 * that does not fit. The result is never longer than uri, and normalizing it again with the same
 * flags gives it back.
 */
MUST_CHECK enum err gate_path_normalize(const char *uri, unsigned flags, char *out, size_t outlen);

/*
 * The rules request uri falls under with rules->options. The routed form (the path, or with
 * GATE_PARAMS_STRIP the path without its ';' parameters) decides whether there is a rule:
 * out->count is 0 when it has none. Every other form the path may be routed as adds its rule:
 * each form with its dot segments kept (routers such as Express route "/api/plus/../x" under
 * /api/plus/), the literal path with GATE_PARAMS_STRIP, and the case-folded match of each form
 * when case_sensitive. So a variant that differs from a gated path in case, dot segments or
 * parameters is never gated more loosely than the strictest of them. ERR_INVALID when uri does
 * not normalize.
 */
MUST_CHECK enum err gate_match_uri(const struct gate_rules *rules, const char *uri,
                                   struct gate_match *out);

#endif /* SUBGATE_BILLING_GATE_H */
