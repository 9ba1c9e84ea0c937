/*
 * test_config.c: the configuration table: validation messages, normalization, defaults, the
 * environment over .env, and redaction in config_print.
 */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "t.h"

#define ENV_MAX  4
#define X16      "xxxxxxxxxxxxxxxx"
#define X256     X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16
#define SECRET32 "0123456789abcdef0123456789abcdef"

/* Stripe's enum for POST /v1/checkout/sessions locale, as CHECKOUT_LOCALE's message lists it */
#define CHECKOUT_LOCALES                                                                         \
    "(auto, bg, cs, da, de, el, en, en-GB, es, es-419, et, fi, fil, fr, fr-CA, hr, hu, id, it, " \
    "ja, ko, lt, lv, ms, mt, nb, nl, pl, pt, pt-BR, ro, ru, sk, sl, sv, th, tr, vi, zh, zh-HK, " \
    "zh-TW)"

struct kv {
    const char *name, *value;
};

/* Every variable, in table order: what config_print must show, and what the tests unset. */
static const char *const all_names[] = {
    "STRIPE_SECRET_KEY",
    "STRIPE_PUBLISHABLE_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_PREMIUM_PRICE_ID",
    "STRIPE_PLUS_PRICE_ID",
    "STRIPE_PREMIUM_ANNUAL_PRICE_ID",
    "STRIPE_PLUS_ANNUAL_PRICE_ID",
    "STRIPE_API_BASE",
    "STRIPE_API_VERSION",
    "CHECKOUT_PROMOTION_CODES",
    "CHECKOUT_AUTOMATIC_TAX",
    "CHECKOUT_LOCALE",
    "DATABASE_URL",
    "STORE_GROUP_COMMIT",
    "USAGE_LEDGER",
    "APP_WEBHOOK_URL",
    "APP_WEBHOOK_SECRETS",
    "APP_WEBHOOK_RETRY_BASE_MS",
    "QUOTA_THRESHOLDS",
    "JWT_SECRET",
    "JWT_PUBLIC_KEY_FILE",
    "JWT_JWKS_URL",
    "JWT_JWKS_FILE",
    "JWT_JWKS_MIN_REFRESH",
    "JWT_JWKS_REFRESH",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "SERVICE_API_KEYS",
    "ALLOWED_REDIRECT_ORIGINS",
    "CORS_ORIGINS",
    "LISTEN",
    "TIERS_FILE",
    "BILLING_THEME_FILE",
    "GATE_RULES_FILE",
    "GATE_CASE_SENSITIVE",
    "GATE_PATH_PARAMS",
    "PAST_DUE_GRACE_DAYS",
    "MAX_BODY_BYTES",
    "HTTP_THREADS",
    "STRIPE_CONCURRENCY",
    "STRIPE_QUEUE_MAX",
    "STRIPE_PER_CLIENT_MAX",
    "WRITE_CONCURRENCY",
    "WRITE_QUEUE_MAX",
    "ENTITLEMENT_CACHE_USERS",
    "ENTITLEMENT_CACHE_TTL_MS",
    "ENTITLEMENT_CACHE_LISTEN",
    "ENTITLEMENT_TOKEN_KEY_FILE",
    "ENTITLEMENT_TOKEN_PUBLIC_KEYS",
    "ENTITLEMENT_TOKEN_TTL",
    "ENTITLEMENT_TOKEN_ISSUER",
    "ENTITLEMENT_TOKEN_AUDIENCE",
    "LOG_LEVEL",
};

static char key_path[64]; /* a readable temp file, created by main() */

static const char *map_lookup(void *ctx, const char *name)
{
    const struct kv *env = ctx;

    for (size_t i = 0; i < ENV_MAX && env[i].name; i++)
        if (strcmp(env[i].name, name) == 0)
            return env[i].value;
    return NULL;
}

static enum err load_map(struct config *c, const struct kv *row_env, char *err, size_t errlen)
{
    struct kv env[ENV_MAX];

    memcpy(env, row_env, sizeof(env));
    return config_load_from(c, map_lookup, env, err, errlen);
}

/* config_print's output with a newline in front, so every line starts with "\nNAME=". */
static char *print_config(const struct config *c)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);

    fputc('\n', f);
    config_print(c, f);
    fclose(f);
    return out;
}

/* The rest of config_print's line for name after "NAME=", such as "info  # default". */
static void printed_line(const char *out, const char *name, char *dst, size_t n)
{
    char needle[64];
    const char *p, *nl = NULL;

    snprintf(needle, sizeof(needle), "\n%s=", name);
    p = strstr(out, needle);
    if (p) {
        p += strlen(needle);
        nl = strchr(p, '\n');
    }
    if (nl)
        snprintf(dst, n, "%.*s", (int)(nl - p), p);
    else
        snprintf(dst, n, "(not printed)");
}

/* The same without the "  # source" comment. */
static void printed_value(const char *out, const char *name, char *dst, size_t n)
{
    char *comment;

    printed_line(out, name, dst, n);
    comment = strstr(dst, "  # ");
    if (comment)
        *comment = '\0';
}

static const struct {
    struct kv env[ENV_MAX];
    const char *want;
    bool secret; /* the message must not quote the value of env[0] */
} bad_rows[] = {
    { { { "STRIPE_SECRET_KEY", "pk_test_oops" } },
      "STRIPE_SECRET_KEY: must start with 'sk_test_', 'sk_live_' or 'rk_'",
      true },
    /* a bare prefix is no key; the message names the prefixes, so the check is off */
    { { { "STRIPE_SECRET_KEY", "sk_test_" } },
      "STRIPE_SECRET_KEY: must start with 'sk_test_', 'sk_live_' or 'rk_'",
      false },
    { { { "STRIPE_SECRET_KEY", "sk_test_has space" } },
      "STRIPE_SECRET_KEY: must not contain spaces",
      true },
    { { { "STRIPE_SECRET_KEY", "sk_test_tab\there" } },
      "STRIPE_SECRET_KEY: must not contain control characters",
      true },
    { { { "STRIPE_PUBLISHABLE_KEY", "sk_test_x" } },
      "STRIPE_PUBLISHABLE_KEY: must start with 'pk_test_' or 'pk_live_'",
      false },
    { { { "STRIPE_WEBHOOK_SECRET", "whsec_ok,nope" } },
      "STRIPE_WEBHOOK_SECRET: must start with 'whsec_'",
      true },
    { { { "STRIPE_WEBHOOK_SECRET", "whsec_ok,,whsec_b" } },
      "STRIPE_WEBHOOK_SECRET: empty entry in the list",
      true },
    { { { "STRIPE_WEBHOOK_SECRET", "whsec_a," } },
      "STRIPE_WEBHOOK_SECRET: empty entry in the list",
      true },
    { { { "STRIPE_WEBHOOK_SECRET", "whsec_1,whsec_2,whsec_3,whsec_4,whsec_5,whsec_6,whsec_7,"
                                   "whsec_8,whsec_9" } },
      "STRIPE_WEBHOOK_SECRET: at most 8 entries, got 9",
      true },
    { { { "STRIPE_PREMIUM_PRICE_ID", "price 1" } },
      "STRIPE_PREMIUM_PRICE_ID: must not contain spaces",
      false },
    { { { "STRIPE_PLUS_PRICE_ID", X256 } },
      "STRIPE_PLUS_PRICE_ID: must be at most 255 bytes",
      false },
    { { { "STRIPE_CONCURRENCY", "0" } },
      "STRIPE_CONCURRENCY: must be an integer 1-256, got '0'",
      false },
    { { { "STRIPE_QUEUE_MAX", "x" } },
      "STRIPE_QUEUE_MAX: must be an integer 1-100000, got 'x'",
      false },
    { { { "STRIPE_PER_CLIENT_MAX", "0" } },
      "STRIPE_PER_CLIENT_MAX: must be an integer 1-100000, got '0'",
      false },
    { { { "WRITE_CONCURRENCY", "257" } },
      "WRITE_CONCURRENCY: must be an integer from -1 to 256, got '257'",
      false },
    { { { "WRITE_QUEUE_MAX", "0" } },
      "WRITE_QUEUE_MAX: must be an integer 1-100000, got '0'",
      false },
    { { { "STRIPE_API_BASE", "ftp://x" } },
      "STRIPE_API_BASE: must start with 'http://' or 'https://'",
      false },
    { { { "STRIPE_API_BASE", "https://api.example?x=1" } },
      "STRIPE_API_BASE: must be an http:// or https:// URL, got 'https://api.example?x=1'",
      false },
    { { { "STRIPE_API_BASE", "http://user@host" } },
      "STRIPE_API_BASE: must be an http:// or https:// URL, got 'http://user@host'",
      false },
    { { { "STRIPE_API_VERSION", "2023-8-16" } },
      "STRIPE_API_VERSION: must look like YYYY-MM-DD or YYYY-MM-DD.name, got '2023-8-16'",
      false },
    { { { "STRIPE_API_VERSION", "2023-08-16." } },
      "STRIPE_API_VERSION: must look like YYYY-MM-DD or YYYY-MM-DD.name, got '2023-08-16.'",
      false },
    { { { "STRIPE_API_VERSION", "2023-08-16-x" } },
      "STRIPE_API_VERSION: must look like YYYY-MM-DD or YYYY-MM-DD.name, got '2023-08-16-x'",
      false },
    { { { "CHECKOUT_PROMOTION_CODES", "yes" } },
      "CHECKOUT_PROMOTION_CODES: must be 'false' or 'true', got 'yes'",
      false },
    { { { "CHECKOUT_AUTOMATIC_TAX", "maybe" } },
      "CHECKOUT_AUTOMATIC_TAX: must be 'false' or 'true', got 'maybe'",
      false },
    { { { "CHECKOUT_LOCALE", "xx" } },
      "CHECKOUT_LOCALE: must be one of Stripe Checkout's locales " CHECKOUT_LOCALES ", got 'xx'",
      false },
    /* Stripe spells its locales one way: pt-BR, not pt-br */
    { { { "CHECKOUT_LOCALE", "pt-br" } },
      "CHECKOUT_LOCALE: must be one of Stripe Checkout's locales " CHECKOUT_LOCALES ", got 'pt-br'",
      false },
    { { { "DATABASE_URL", "mysql://x" } },
      "DATABASE_URL: must start with 'sqlite:', 'postgres://' or 'postgresql://'",
      false },
    { { { "JWT_SECRET", "short-secret" } }, "JWT_SECRET: must be at least 32 bytes", true },
    { { { "JWT_PUBLIC_KEY_FILE", "/nonexistent/key.pem" } },
      "JWT_PUBLIC_KEY_FILE: cannot read '/nonexistent/key.pem': No such file or directory",
      false },
    { { { "JWT_PUBLIC_KEY_FILE", "/" } }, "JWT_PUBLIC_KEY_FILE: '/' is not a regular file", false },
    { { { "JWT_JWKS_URL", "https://bob:hunter2@idp.example/jwks.json" } },
      "JWT_JWKS_URL: must be an https:// URL without a user or password in it (the value is not "
      "shown: it may hold one)",
      false },
    { { { "JWT_JWKS_URL", "idp.example/jwks.json" } },
      "JWT_JWKS_URL: must start with 'http://' or 'https://'",
      false },
    { { { "JWT_JWKS_URL", "http://idp.example/jwks.json" } },
      "JWT_JWKS_URL: must be an https:// URL (http:// only for a loopback host), got "
      "'http://idp.example/jwks.json'",
      false },
    { { { "JWT_JWKS_URL", "http://127.0.0.1.idp.example/jwks" } },
      "JWT_JWKS_URL: must be an https:// URL (http:// only for a loopback host), got "
      "'http://127.0.0.1.idp.example/jwks'",
      false },
    { { { "JWT_JWKS_URL", "http://localhost.idp.example/jwks" } },
      "JWT_JWKS_URL: must be an https:// URL (http:// only for a loopback host), got "
      "'http://localhost.idp.example/jwks'",
      false },
    { { { "JWT_JWKS_URL", "https://user@idp.example/jwks" } },
      "JWT_JWKS_URL: must be an https:// URL without a user or password in it (the value is not "
      "shown: it may hold one)",
      false },
    { { { "JWT_JWKS_URL", "https://idp.example/jwks#keys" } },
      "JWT_JWKS_URL: must be an https:// URL, got 'https://idp.example/jwks#keys'",
      false },
    { { { "JWT_JWKS_FILE", "/nonexistent/jwks.json" } },
      "JWT_JWKS_FILE: cannot read '/nonexistent/jwks.json': No such file or directory",
      false },
    { { { "JWT_JWKS_MIN_REFRESH", "0" } },
      "JWT_JWKS_MIN_REFRESH: must be an integer 1-3600, got '0'",
      false },
    { { { "JWT_JWKS_REFRESH", "86401" } },
      "JWT_JWKS_REFRESH: must be an integer 1-86400, got '86401'",
      false },
    { { { "JWT_ISSUER", "a\nb" } }, "JWT_ISSUER: must not contain control characters", false },
    { { { "SERVICE_API_KEYS", "0123456789abcdef,short-secret" } },
      "SERVICE_API_KEYS: each key must be at least 16 bytes",
      true },
    { { { "SERVICE_API_KEYS", "0123456789abcdef\xc3\xa9-secret" } },
      "SERVICE_API_KEYS: keys must be printable ASCII without spaces",
      true },
    { { { "ALLOWED_REDIRECT_ORIGINS", "localhost:3000" } },
      "ALLOWED_REDIRECT_ORIGINS: must start with 'http://' or 'https://'",
      false },
    { { { "ALLOWED_REDIRECT_ORIGINS", "http://a.example/" } },
      "ALLOWED_REDIRECT_ORIGINS: must be scheme://host[:port] with no path, got "
      "'http://a.example/'",
      false },
    { { { "ALLOWED_REDIRECT_ORIGINS", "https://a.example,http://b.example?x" } },
      "ALLOWED_REDIRECT_ORIGINS: must be scheme://host[:port] with no path, got "
      "'http://b.example?x'",
      false },
    { { { "ALLOWED_REDIRECT_ORIGINS", "https://a.example:0" } },
      "ALLOWED_REDIRECT_ORIGINS: must be scheme://host[:port] with no path, got "
      "'https://a.example:0'",
      false },
    { { { "CORS_ORIGINS", "*" } }, "CORS_ORIGINS: must start with 'http://' or 'https://'", false },
    { { { "CORS_ORIGINS", "https://a.example,,https://b.example" } },
      "CORS_ORIGINS: empty entry in the list",
      false },
    { { { "CORS_ORIGINS", "https://a.example/app" } },
      "CORS_ORIGINS: must be scheme://host[:port] with no path, got 'https://a.example/app'",
      false },
    { { { "ALLOWED_REDIRECT_ORIGINS", "http://a.example/x" } },
      "ALLOWED_REDIRECT_ORIGINS: must be scheme://host[:port] with no path, got "
      "'http://a.example/x'",
      false },
    { { { "LISTEN", "127.0.0.1:99999" } }, "LISTEN: port must be 1-65535, got '99999'", false },
    { { { "LISTEN", "127.0.0.1:0" } }, "LISTEN: port must be 1-65535, got '0'", false },
    { { { "LISTEN", "127.0.0.1:65536" } }, "LISTEN: port must be 1-65535, got '65536'", false },
    { { { "LISTEN", "[::1]:" } }, "LISTEN: port must be 1-65535, got ''", false },
    { { { "LISTEN", "8080" } }, "LISTEN: must be host:port, got '8080'", false },
    { { { "LISTEN", "[::1]" } }, "LISTEN: must be host:port, got '[::1]'", false },
    { { { "LISTEN", "localhost:8080" } },
      "LISTEN: host must be a numeric IPv4 address or [IPv6], got 'localhost'",
      false },
    { { { "LISTEN", "::1:8080" } },
      "LISTEN: host must be a numeric IPv4 address or [IPv6], got '::1'",
      false },
    { { { "TIERS_FILE", "/nonexistent/tiers.json" } },
      "TIERS_FILE: cannot read '/nonexistent/tiers.json': No such file or directory",
      false },
    { { { "GATE_CASE_SENSITIVE", "yes" } },
      "GATE_CASE_SENSITIVE: must be 'false' or 'true', got 'yes'",
      false },
    { { { "GATE_CASE_SENSITIVE", "1" } },
      "GATE_CASE_SENSITIVE: must be 'false' or 'true', got '1'",
      false },
    { { { "GATE_PATH_PARAMS", "allow" } },
      "GATE_PATH_PARAMS: must be 'refuse' or 'strip', got 'allow'",
      false },
    { { { "PAST_DUE_GRACE_DAYS", "61" } },
      "PAST_DUE_GRACE_DAYS: must be an integer 0-60, got '61'",
      false },
    { { { "PAST_DUE_GRACE_DAYS", "3d" } },
      "PAST_DUE_GRACE_DAYS: must be an integer 0-60, got '3d'",
      false },
    { { { "PAST_DUE_GRACE_DAYS", "-1" } },
      "PAST_DUE_GRACE_DAYS: must be an integer 0-60, got '-1'",
      false },
    { { { "MAX_BODY_BYTES", "1023" } },
      "MAX_BODY_BYTES: must be an integer 1024-10485760, got '1023'",
      false },
    { { { "HTTP_THREADS", "257" } }, "HTTP_THREADS: must be an integer 0-256, got '257'", false },
    { { { "ENTITLEMENT_CACHE_USERS", "-1" } },
      "ENTITLEMENT_CACHE_USERS: must be an integer 0-16777216, got '-1'",
      false },
    { { { "ENTITLEMENT_CACHE_TTL_MS", "0" } },
      "ENTITLEMENT_CACHE_TTL_MS: must be an integer 1-3600000, got '0'",
      false },
    { { { "ENTITLEMENT_CACHE_LISTEN", "yes" } },
      "ENTITLEMENT_CACHE_LISTEN: must be 'false' or 'true', got 'yes'",
      false },
    { { { "ENTITLEMENT_TOKEN_TTL", "29" } },
      "ENTITLEMENT_TOKEN_TTL: must be an integer 30-86400, got '29'",
      false },
    { { { "ENTITLEMENT_TOKEN_KEY_FILE", "/nonexistent/key.pem" } },
      "ENTITLEMENT_TOKEN_KEY_FILE: cannot read '/nonexistent/key.pem': No such file or directory",
      false },
    { { { "LOG_LEVEL", "verbose" } },
      "LOG_LEVEL: must be debug, info, warn or error, got 'verbose'",
      false },
    { { { "LOG_LEVEL", "off" } },
      "LOG_LEVEL: must be debug, info, warn or error, got 'off'",
      false },
    { { { "JWT_SECRET", SECRET32 }, { "JWT_PUBLIC_KEY_FILE", key_path } },
      "set one of JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_URL and JWT_JWKS_FILE, not both "
      "JWT_SECRET and JWT_PUBLIC_KEY_FILE",
      true },
    { { { "JWT_JWKS_URL", "https://idp.example/jwks" }, { "JWT_JWKS_FILE", key_path } },
      "set one of JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_URL and JWT_JWKS_FILE, not both "
      "JWT_JWKS_URL and JWT_JWKS_FILE",
      false },
    { { { "JWT_PUBLIC_KEY_FILE", key_path }, { "JWT_JWKS_URL", "https://idp.example/jwks" } },
      "set one of JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_URL and JWT_JWKS_FILE, not both "
      "JWT_PUBLIC_KEY_FILE and JWT_JWKS_URL",
      false },
    { { { "LISTEN", "bad" }, { "STRIPE_SECRET_KEY", "bad" } },
      "STRIPE_SECRET_KEY: must start with 'sk_test_', 'sk_live_' or 'rk_'",
      false },
};

static void test_bad_values(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(bad_rows); i++) {
        struct config c;
        char err[512] = ""; /* as main.c's: the locale message lists every locale */

        T_EQ_I64(load_map(&c, bad_rows[i].env, err, sizeof(err)), ERR_INVALID, "bad %zu: fails", i);
        T_EQ_STR(err, bad_rows[i].want, "bad %zu: message", i);
        if (bad_rows[i].secret)
            T_OK(!strstr(err, bad_rows[i].env[0].value), "bad %zu: the secret is not quoted", i);
        T_OK(c.listen_host == NULL && c.allowed_redirect_origins == NULL,
             "bad %zu: config left empty", i);
        config_release(&c);
    }
}

static const struct {
    struct kv env[ENV_MAX];
    const char *name; /* the variable whose printed value is checked */
    const char *want;
} good_rows[] = {
    { { { NULL, NULL } }, "STRIPE_API_BASE", "https://api.stripe.com" },
    { { { "STRIPE_API_BASE", "http://127.0.0.1:12111//" } },
      "STRIPE_API_BASE",
      "http://127.0.0.1:12111" },
    { { { "STRIPE_API_BASE", "https://stripe.example/v1/" } },
      "STRIPE_API_BASE",
      "https://stripe.example/v1" },
    { { { NULL, NULL } }, "STRIPE_API_VERSION", "2023-08-16" },
    { { { "STRIPE_API_VERSION", "2024-09-30.acacia" } },
      "STRIPE_API_VERSION",
      "2024-09-30.acacia" },
    { { { NULL, NULL } }, "DATABASE_URL", "sqlite:var/subgate.db" },
    { { { "DATABASE_URL", "sqlite::memory:" } }, "DATABASE_URL", "sqlite::memory:" },
    { { { "DATABASE_URL", "postgresql://u@db/x" } }, "DATABASE_URL", "postgresql://u@db/x" },
    { { { NULL, NULL } }, "ALLOWED_REDIRECT_ORIGINS", "http://localhost:3000" },
    { { { "ALLOWED_REDIRECT_ORIGINS", " https://App.Example.COM , http://[::1]:3000" } },
      "ALLOWED_REDIRECT_ORIGINS",
      "https://app.example.com,http://[::1]:3000" },
    { { { NULL, NULL } }, "CORS_ORIGINS", "http://localhost:3000" },
    { { { "ALLOWED_REDIRECT_ORIGINS", "https://App.Example, https://b.example" } },
      "CORS_ORIGINS",
      "https://app.example,https://b.example" },
    { { { "ALLOWED_REDIRECT_ORIGINS", "https://a.example" },
        { "CORS_ORIGINS", "http://LocalHost:5173 ,https://a.example" } },
      "CORS_ORIGINS",
      "http://localhost:5173,https://a.example" },
    { { { NULL, NULL } }, "LISTEN", "127.0.0.1:8080" },
    { { { "LISTEN", "[::1]:9000" } }, "LISTEN", "[::1]:9000" },
    { { { "LISTEN", "0.0.0.0:1" } }, "LISTEN", "0.0.0.0:1" },
    { { { "LISTEN", "10.0.0.1:65535" } }, "LISTEN", "10.0.0.1:65535" },
    { { { NULL, NULL } }, "ENTITLEMENT_TOKEN_TTL", "300" },
    { { { NULL, NULL } }, "ENTITLEMENT_TOKEN_ISSUER", "subgate" },
    { { { NULL, NULL } }, "LOG_LEVEL", "info" },
    { { { "LOG_LEVEL", "DEBUG" } }, "LOG_LEVEL", "debug" },
    { { { NULL, NULL } }, "GATE_CASE_SENSITIVE", "false" },
    { { { "GATE_CASE_SENSITIVE", "TRUE" } }, "GATE_CASE_SENSITIVE", "true" },
    { { { "GATE_CASE_SENSITIVE", "false" } }, "GATE_CASE_SENSITIVE", "false" },
    { { { NULL, NULL } }, "CHECKOUT_PROMOTION_CODES", "false" },
    { { { "CHECKOUT_PROMOTION_CODES", "True" } }, "CHECKOUT_PROMOTION_CODES", "true" },
    { { { NULL, NULL } }, "CHECKOUT_AUTOMATIC_TAX", "false" },
    { { { "CHECKOUT_AUTOMATIC_TAX", "true" } }, "CHECKOUT_AUTOMATIC_TAX", "true" },
    { { { NULL, NULL } }, "CHECKOUT_LOCALE", "(unset)" },
    { { { "CHECKOUT_LOCALE", "de" } }, "CHECKOUT_LOCALE", "de" },
    { { { "CHECKOUT_LOCALE", "auto" } }, "CHECKOUT_LOCALE", "auto" },
    { { { "CHECKOUT_LOCALE", "zh-TW" } }, "CHECKOUT_LOCALE", "zh-TW" },
    { { { NULL, NULL } }, "STORE_GROUP_COMMIT", "on" },
    { { { "STORE_GROUP_COMMIT", "OFF" } }, "STORE_GROUP_COMMIT", "off" },
    { { { NULL, NULL } }, "USAGE_LEDGER", "on" },
    { { { "USAGE_LEDGER", "off" } }, "USAGE_LEDGER", "off" },
    { { { NULL, NULL } }, "GATE_PATH_PARAMS", "refuse" },
    { { { "GATE_PATH_PARAMS", "Strip" } }, "GATE_PATH_PARAMS", "strip" },
    { { { NULL, NULL } }, "PAST_DUE_GRACE_DAYS", "3" },
    { { { "PAST_DUE_GRACE_DAYS", "60" } }, "PAST_DUE_GRACE_DAYS", "60" },
    { { { "PAST_DUE_GRACE_DAYS", "" } }, "PAST_DUE_GRACE_DAYS", "3" },
    { { { NULL, NULL } }, "MAX_BODY_BYTES", "65536" },
    { { { "MAX_BODY_BYTES", "10485760" } }, "MAX_BODY_BYTES", "10485760" },
    { { { NULL, NULL } }, "HTTP_THREADS", "0" },
    { { { "HTTP_THREADS", "256" } }, "HTTP_THREADS", "256" },
    { { { NULL, NULL } }, "STRIPE_CONCURRENCY", "8" },
    { { { "STRIPE_CONCURRENCY", "1" } }, "STRIPE_CONCURRENCY", "1" },
    { { { NULL, NULL } }, "STRIPE_QUEUE_MAX", "64" },
    { { { NULL, NULL } }, "STRIPE_PER_CLIENT_MAX", "32" },
    { { { "STRIPE_PER_CLIENT_MAX", "1" } }, "STRIPE_PER_CLIENT_MAX", "1" },
    { { { NULL, NULL } }, "WRITE_CONCURRENCY", "-1" },
    { { { "WRITE_CONCURRENCY", "0" } }, "WRITE_CONCURRENCY", "0" },
    { { { NULL, NULL } }, "WRITE_QUEUE_MAX", "1024" },
    { { { NULL, NULL } }, "ENTITLEMENT_CACHE_USERS", "65536" },
    { { { "ENTITLEMENT_CACHE_USERS", "0" } }, "ENTITLEMENT_CACHE_USERS", "0" },
    { { { NULL, NULL } }, "ENTITLEMENT_CACHE_TTL_MS", "1000" },
    { { { "ENTITLEMENT_CACHE_TTL_MS", "3600000" } }, "ENTITLEMENT_CACHE_TTL_MS", "3600000" },
    { { { NULL, NULL } }, "ENTITLEMENT_CACHE_LISTEN", "true" },
    { { { "ENTITLEMENT_CACHE_LISTEN", "FALSE" } }, "ENTITLEMENT_CACHE_LISTEN", "false" },
    { { { NULL, NULL } }, "STRIPE_SECRET_KEY", "(unset)" },
    { { { "STRIPE_SECRET_KEY", "sk_live_abc" } }, "STRIPE_SECRET_KEY", "sk_live_\u2026(redacted)" },
    { { { "STRIPE_SECRET_KEY", "rk_test_abc" } }, "STRIPE_SECRET_KEY", "rk_\u2026(redacted)" },
    { { { "STRIPE_PUBLISHABLE_KEY", "pk_live_abc" } }, "STRIPE_PUBLISHABLE_KEY", "pk_live_abc" },
    { { { "STRIPE_WEBHOOK_SECRET", "whsec_a , whsec_b" } },
      "STRIPE_WEBHOOK_SECRET",
      "whsec_\u2026(redacted),whsec_\u2026(redacted)" },
    { { { "SERVICE_API_KEYS", "0123456789abcdef,fedcba9876543210" } },
      "SERVICE_API_KEYS",
      "(set, redacted),(set, redacted)" },
    { { { "JWT_SECRET", SECRET32 } }, "JWT_SECRET", "(set, redacted)" },
    { { { "JWT_SECRET", "" } }, "JWT_SECRET", "(unset)" },
    { { { "JWT_PUBLIC_KEY_FILE", key_path } }, "JWT_PUBLIC_KEY_FILE", key_path },
    { { { "TIERS_FILE", key_path } }, "TIERS_FILE", key_path },
    { { { "JWT_JWKS_URL", "https://idp.example/.well-known/jwks.json" } },
      "JWT_JWKS_URL",
      "https://idp.example/.well-known/jwks.json" },
    { { { "JWT_JWKS_URL", "http://127.0.0.1:9000/jwks" } },
      "JWT_JWKS_URL",
      "http://127.0.0.1:9000/jwks" },
    { { { "JWT_JWKS_URL", "http://localhost/jwks" } }, "JWT_JWKS_URL", "http://localhost/jwks" },
    { { { "JWT_JWKS_URL", "http://[::1]:8000/jwks" } }, "JWT_JWKS_URL", "http://[::1]:8000/jwks" },
    { { { "JWT_JWKS_FILE", key_path } }, "JWT_JWKS_FILE", key_path },
    { { { NULL, NULL } }, "JWT_JWKS_MIN_REFRESH", "30" },
    { { { NULL, NULL } }, "JWT_JWKS_REFRESH", "600" },
    { { { "JWT_JWKS_REFRESH", "60" } }, "JWT_JWKS_REFRESH", "60" },
    { { { "JWT_ISSUER", "https://issuer.example" } }, "JWT_ISSUER", "https://issuer.example" },
    { { { NULL, NULL } }, "JWT_AUDIENCE", "(unset)" },
    { { { "STRIPE_PREMIUM_PRICE_ID", "price_123" } }, "STRIPE_PREMIUM_PRICE_ID", "price_123" },
};

static void test_good_values(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(good_rows); i++) {
        struct config c;
        char err[256] = "", got[512];
        char *out;

        T_EQ_I64(load_map(&c, good_rows[i].env, err, sizeof(err)), ERR_OK, "good %zu: loads (%s)",
                 i, err);
        out = print_config(&c);
        printed_value(out, good_rows[i].name, got, sizeof(got));
        T_EQ_STR(got, good_rows[i].want, "good %zu: %s", i, good_rows[i].name);
        free(out);
        config_release(&c);
    }
}

static const struct kv full_env[ENV_MAX] = {
    { "STRIPE_SECRET_KEY", "sk_test_supersecretvalue123" },
    { "STRIPE_WEBHOOK_SECRET", "whsec_topsecret1,whsec_topsecret2" },
    { "JWT_SECRET", "jwtsecret-jwtsecret-jwtsecret-jwtsecret" },
    { "SERVICE_API_KEYS", "servicekey-000001,servicekey-000002" },
};

/* The typed fields behind the printed values. */
static void test_fields(void)
{
    struct config c;
    char err[256] = "";

    T_EQ_I64(load_map(&c, full_env, err, sizeof(err)), ERR_OK, "full config loads (%s)", err);
    T_EQ_STR(c.listen_host, "127.0.0.1", "listen host");
    T_EQ_I64(c.listen_port, 8080, "listen port");
    T_EQ_I64(c.past_due_grace_days, 3, "grace days");
    T_EQ_I64(c.max_body_bytes, 65536, "max body");
    T_EQ_I64(c.http_threads, 0, "threads");
    T_OK(!c.gate_case_sensitive, "the gate ignores case by default");
    T_EQ_I64(c.gate_path_params, CONFIG_PATH_PARAMS_REFUSE, "the gate refuses ';' by default");
    T_EQ_I64(c.allowed_redirect_origin_count, 1, "one default origin");
    T_EQ_STR(c.allowed_redirect_origins[0], "http://localhost:3000", "default origin");
    T_EQ_I64(c.cors_origin_count, 1, "CORS follows the redirect origins by default");
    T_EQ_STR(c.cors_origins[0], "http://localhost:3000", "default CORS origin");
    T_EQ_I64(c.stripe_webhook_secret_count, 2, "two webhook secrets");
    T_OK(secret_equal(&c.stripe_webhook_secrets[1], "whsec_topsecret2", 16), "second secret");
    T_EQ_I64(c.service_api_key_count, 2, "two service keys");
    T_OK(secret_equal(&c.jwt_secret, full_env[2].value, strlen(full_env[2].value)), "jwt secret");
    T_OK(config_has_stripe(&c) && config_has_webhook_secret(&c), "stripe and webhooks on");
    T_OK(c.stripe_publishable_key == NULL && c.tiers_file == NULL, "unset strings are NULL");
    T_EQ_I64(c.source[0], CONFIG_SRC_ENV, "source of STRIPE_SECRET_KEY");
    T_EQ_I64(c.source[1], CONFIG_SRC_UNSET, "source of STRIPE_PUBLISHABLE_KEY");
    T_EQ_I64(c.source[7], CONFIG_SRC_DEFAULT, "source of STRIPE_API_BASE");
    config_release(&c);
    T_OK(c.stripe_webhook_secrets == NULL && c.stripe_webhook_secret_count == 0 &&
             !secret_is_set(&c.jwt_secret) && c.listen_host == NULL,
         "release empties the config");
    T_OK(!config_has_stripe(&c) && !config_has_webhook_secret(&c), "nothing configured after");
}

static void test_print_redacts(void)
{
    static const char *const hidden[] = { "supersecretvalue123", "topsecret1", "topsecret2",
                                          "jwtsecret", "servicekey" };
    static const char *const shown[] = {
        "\nSTRIPE_SECRET_KEY=sk_test_\u2026(redacted)  # env\n",
        "\nJWT_SECRET=(set, redacted)  # env\n",
        "\nSTRIPE_API_BASE=https://api.stripe.com  # default\n",
        "\nTIERS_FILE=(unset)  # unset\n",
    };
    struct config c;
    char err[256] = "";
    char *out;
    const char *p;

    T_EQ_I64(load_map(&c, full_env, err, sizeof(err)), ERR_OK, "loads (%s)", err);
    out = print_config(&c);
    for (size_t i = 0; i < ARRAY_SIZE(hidden); i++)
        T_OK(!strstr(out, hidden[i]), "print hides '%s'", hidden[i]);
    for (size_t i = 0; i < ARRAY_SIZE(shown); i++)
        T_OK(strstr(out, shown[i]) != NULL, "print shows line %zu", i);
    p = out;
    for (size_t i = 0; i < ARRAY_SIZE(all_names); i++) {
        char needle[64];

        snprintf(needle, sizeof(needle), "\n%s=", all_names[i]);
        T_OK(p && strncmp(p, needle, strlen(needle)) == 0, "line %zu is %s", i, all_names[i]);
        p = p ? strchr(p + 1, '\n') : NULL;
    }
    T_OK(p && strcmp(p, "\n") == 0, "nothing after the last variable");
    free(out);
    config_release(&c);
}

static const struct {
    struct kv env[ENV_MAX];
    const char *want; /* NULL: ready to serve */
} serve_rows[] = {
    { { { NULL, NULL } },
      "JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_URL or JWT_JWKS_FILE: one is required to verify "
      "user tokens" },
    { { { "STRIPE_SECRET_KEY", "sk_test_x" } },
      "JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_URL or JWT_JWKS_FILE: one is required to verify "
      "user tokens" },
    { { { "JWT_JWKS_URL", "https://idp.example/jwks" } }, NULL },
    { { { "JWT_JWKS_FILE", key_path } }, NULL },
    { { { "JWT_SECRET", SECRET32 } }, NULL },
    { { { "JWT_PUBLIC_KEY_FILE", key_path } }, NULL },
};

static void test_require_serve(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(serve_rows); i++) {
        struct config c;
        char err[256] = "";

        T_EQ_I64(load_map(&c, serve_rows[i].env, err, sizeof(err)), ERR_OK, "serve %zu: loads", i);
        T_EQ_I64(config_require_serve(&c, err, sizeof(err)),
                 serve_rows[i].want ? ERR_INVALID : ERR_OK, "serve %zu: result", i);
        if (serve_rows[i].want)
            T_EQ_STR(err, serve_rows[i].want, "serve %zu: message", i);
        config_release(&c);
    }
}

static const struct {
    const char *dotenv; /* the file's text; NULL: no file */
    bool is_dir;        /* the path names a directory instead */
    struct kv env[ENV_MAX];
    const char *want_head, *want_tail; /* the error around the path; NULL: loads */
    const char *name, *want;           /* then this variable prints this line */
} load_rows[] = {
    { "# dev\nexport JWT_SECRET=\"" SECRET32 "\"\nSTRIPE_PUBLISHABLE_KEY=pk_test_fromdotenv\n"
      "LISTEN=127.0.0.1:9999\nOTHER_TOOL=ignored\nLOG_LEVEL=warn\n",
      false,
      { { "LISTEN", "127.0.0.1:7777" }, { "LOG_LEVEL", "" } },
      NULL,
      NULL,
      "LISTEN",
      "127.0.0.1:7777  # env" },
    { "STRIPE_PUBLISHABLE_KEY=pk_test_fromdotenv\n",
      false,
      { { NULL, NULL } },
      NULL,
      NULL,
      "STRIPE_PUBLISHABLE_KEY",
      "pk_test_fromdotenv  # .env" },
    { "LOG_LEVEL=warn\n", false, { { "LOG_LEVEL", "" } }, NULL, NULL, "LOG_LEVEL", "warn  # .env" },
    { "LOG_LEVEL=\n", false, { { NULL, NULL } }, NULL, NULL, "LOG_LEVEL", "info  # default" },
    { "JWT_SECRET=short-secret\n",
      false,
      { { NULL, NULL } },
      "JWT_SECRET: must be at least 32 bytes",
      "",
      NULL,
      NULL },
    { "JWT_SECRET=short-secret\n",
      false,
      { { "JWT_SECRET", SECRET32 } },
      NULL,
      NULL,
      "JWT_SECRET",
      "(set, redacted)  # env" },
    { NULL, false, { { NULL, NULL } }, NULL, NULL, "LISTEN", "127.0.0.1:8080  # default" },
    { "A=1\nTHIS IS NOT AN ASSIGNMENT\n",
      false,
      { { NULL, NULL } },
      "cannot parse '",
      "' line 2: missing '=' after the key (not shown: it may be a pasted value)",
      NULL,
      NULL },
    { "A='secret-value\n",
      false,
      { { NULL, NULL } },
      "cannot parse '",
      "' line 1: unterminated single quote",
      NULL,
      NULL },
    { "", true, { { NULL, NULL } }, "cannot read '", "': Is a directory", NULL, NULL },
};

static void unset_all(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(all_names); i++)
        unsetenv(all_names[i]);
}

/* Writes the row's .env (or directory) as dir/.env; returns false if the fixture failed. */
static bool write_dotenv(const char *path, const char *text, bool is_dir)
{
    FILE *f;

    if (is_dir)
        return mkdir(path, 0700) == 0;
    if (!text)
        return true;
    f = fopen(path, "w");
    if (!f)
        return false;
    fputs(text, f);
    return fclose(f) == 0;
}

static void check_load(size_t i, const char *path, enum err e, const struct config *c,
                       const char *err)
{
    char want[512], got[512];
    char *out;

    if (load_rows[i].want_head) {
        snprintf(want, sizeof(want), "%s%s%s", load_rows[i].want_head,
                 load_rows[i].want_tail[0] ? path : "", load_rows[i].want_tail);
        T_EQ_I64(e, ERR_INVALID, "load %zu: fails", i);
        T_EQ_STR(err, want, "load %zu: message", i);
        T_OK(!strstr(err, "secret-value"), "load %zu: no value quoted", i);
        return;
    }
    T_EQ_I64(e, ERR_OK, "load %zu: loads (%s)", i, err);
    out = print_config(c);
    printed_line(out, load_rows[i].name, got, sizeof(got));
    T_EQ_STR(got, load_rows[i].want, "load %zu: %s", i, load_rows[i].name);
    free(out);
}

/* config_load over real files and the real environment: the environment beats .env. */
static void test_load_env_and_dotenv(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(load_rows); i++) {
        char dir[] = "/tmp/test_config.XXXXXX", path[64], err[256] = "";
        struct config c;
        enum err e;

        unset_all();
        for (size_t k = 0; k < ENV_MAX && load_rows[i].env[k].name; k++)
            setenv(load_rows[i].env[k].name, load_rows[i].env[k].value, 1);
        T_OK(mkdtemp(dir) != NULL, "load %zu: temp dir", i);
        snprintf(path, sizeof(path), "%s/.env", dir);
        T_OK(write_dotenv(path, load_rows[i].dotenv, load_rows[i].is_dir), "load %zu: fixture", i);
        e = config_load(&c, path, err, sizeof(err));
        check_load(i, path, e, &c, err);
        config_release(&c);
        if (load_rows[i].is_dir)
            rmdir(path);
        else
            unlink(path);
        rmdir(dir);
    }
    unset_all();
}

int main(void)
{
    int fd;

    snprintf(key_path, sizeof(key_path), "/tmp/test_config_key.XXXXXX");
    fd = mkstemp(key_path);
    T_OK(fd >= 0 && write(fd, "pem\n", 4) == 4, "temp key file");
    close(fd);
    test_bad_values();
    test_good_values();
    test_fields();
    test_print_redacts();
    test_require_serve();
    test_load_env_and_dotenv();
    unlink(key_path);
    return t_done();
}
