/*
 * config.c: THE table of configuration variables and the loader that applies it (STYLE rule 45):
 * each row names a variable, its field in struct config, its default and how it is checked.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/file.h"
#include "base/str.h"
#include "base/url.h"
#include "base/xalloc.h"
#include "config/dotenv.h"

#define WHY_MAX   320 /* one reason, before the variable's name goes in front */
#define ECHO_MAX  200 /* the most bytes of a (non-secret) value quoted back in a message */
#define TOKEN_MAX 255 /* bytes in a Stripe key or id */

enum conf_kind {
    CONF_STRING, /* char *; with CONF_LIST a char ** array */
    CONF_SECRET, /* struct secret; with CONF_LIST a struct secret * array */
    CONF_INT,    /* int64_t within [min, max] */
    CONF_ADDR,   /* host:port; the char * host at off, the int64_t port at aux_off */
    CONF_BOOL,   /* bool: "true" or "false", any case */
    CONF_CHOICE, /* int: the index in choices of the value, any case */
};

enum conf_flags {
    CONF_LIST = 1 << 0,       /* comma-separated; aux_off is the size_t count, max the most */
    CONF_LOWER = 1 << 1,      /* stored lower-cased */
    CONF_TRIM_SLASH = 1 << 2, /* trailing '/' removed */
    CONF_PASSWORD = 1 << 3,   /* a URL that may hold a password: printed without it */
};

/* Checks one value or list entry <p, n>; on failure writes why and returns false. */
typedef bool (*conf_check_fn)(const char *p, size_t n, char *why, size_t whylen);

struct conf_var {
    const char *name;            /* the environment variable */
    size_t off;                  /* the field in struct config */
    size_t aux_off;              /* CONF_LIST: the count; CONF_ADDR: the port */
    const char *def;             /* the default value, NULL for none */
    const char *def_var;         /* or the value of this earlier variable (and its default) */
    const char *const *prefixes; /* NULL-terminated; the value must start with one */
    const char *const *choices;  /* CONF_CHOICE: NULL-terminated names, in index order */
    int64_t min, max;            /* CONF_INT: the range; CONF_LIST: max is the most entries */
    conf_check_fn check;         /* more validation, NULL for none */
    enum conf_kind kind;         /* what the field is */
    unsigned flags;              /* enum conf_flags */
};

static bool check_token(const char *p, size_t n, char *why, size_t whylen);
static bool check_api_base(const char *p, size_t n, char *why, size_t whylen);
static bool check_api_version(const char *p, size_t n, char *why, size_t whylen);
static bool check_jwt_secret(const char *p, size_t n, char *why, size_t whylen);
static bool check_service_key(const char *p, size_t n, char *why, size_t whylen);
static bool check_origin(const char *p, size_t n, char *why, size_t whylen);
static bool check_readable_file(const char *p, size_t n, char *why, size_t whylen);
static bool check_jwks_url(const char *p, size_t n, char *why, size_t whylen);
static bool check_log_level(const char *p, size_t n, char *why, size_t whylen);
static bool check_checkout_locale(const char *p, size_t n, char *why, size_t whylen);
static bool check_app_webhook_secret(const char *p, size_t n, char *why, size_t whylen);
static bool check_percent(const char *p, size_t n, char *why, size_t whylen);

static const char *const secret_key_prefixes[] = { "sk_test_", "sk_live_", "rk_", NULL };
static const char *const publishable_key_prefixes[] = { "pk_test_", "pk_live_", NULL };
static const char *const webhook_secret_prefixes[] = { "whsec_", NULL };
static const char *const http_prefixes[] = { "http://", "https://", NULL };
static const char *const bool_names[] = { "false", "true", NULL };
static const char *const gate_path_params_names[] = {
    [CONFIG_PATH_PARAMS_REFUSE] = "refuse",
    [CONFIG_PATH_PARAMS_STRIP] = "strip",
    NULL,
};
static const char *const on_off_names[] = { "off", "on", NULL }; /* index: the bool */

static const char *const database_url_prefixes[] = { "sqlite:", "postgres://", "postgresql://",
                                                     NULL };

#define F(field) offsetof(struct config, field)

/* The configuration, in the order config_print shows it. */
static const struct conf_var conf_vars[] = {
    { .name = "STRIPE_SECRET_KEY",
      .kind = CONF_SECRET,
      .off = F(stripe_secret_key),
      .prefixes = secret_key_prefixes,
      .check = check_token },
    { .name = "STRIPE_PUBLISHABLE_KEY",
      .kind = CONF_STRING,
      .off = F(stripe_publishable_key),
      .prefixes = publishable_key_prefixes,
      .check = check_token },
    { .name = "STRIPE_WEBHOOK_SECRET",
      .kind = CONF_SECRET,
      .off = F(stripe_webhook_secrets),
      .aux_off = F(stripe_webhook_secret_count),
      .flags = CONF_LIST,
      .max = 8,
      .prefixes = webhook_secret_prefixes,
      .check = check_token },
    { .name = "STRIPE_PREMIUM_PRICE_ID",
      .kind = CONF_STRING,
      .off = F(stripe_premium_price_id),
      .check = check_token },
    { .name = "STRIPE_PLUS_PRICE_ID",
      .kind = CONF_STRING,
      .off = F(stripe_plus_price_id),
      .check = check_token },
    { .name = "STRIPE_PREMIUM_ANNUAL_PRICE_ID",
      .kind = CONF_STRING,
      .off = F(stripe_premium_annual_price_id),
      .check = check_token },
    { .name = "STRIPE_PLUS_ANNUAL_PRICE_ID",
      .kind = CONF_STRING,
      .off = F(stripe_plus_annual_price_id),
      .check = check_token },
    { .name = "STRIPE_API_BASE",
      .kind = CONF_STRING,
      .off = F(stripe_api_base),
      .def = "https://api.stripe.com",
      .flags = CONF_TRIM_SLASH,
      .prefixes = http_prefixes,
      .check = check_api_base },
    { .name = "STRIPE_API_VERSION",
      .kind = CONF_STRING,
      .off = F(stripe_api_version),
      .def = "2023-08-16",
      .check = check_api_version },
    { .name = "CHECKOUT_PROMOTION_CODES",
      .kind = CONF_BOOL,
      .off = F(checkout_promotion_codes),
      .def = "false",
      .choices = bool_names },
    { .name = "CHECKOUT_AUTOMATIC_TAX",
      .kind = CONF_BOOL,
      .off = F(checkout_automatic_tax),
      .def = "false",
      .choices = bool_names },
    { .name = "CHECKOUT_LOCALE",
      .kind = CONF_STRING,
      .off = F(checkout_locale),
      .check = check_checkout_locale },
    { .name = "DATABASE_URL",
      .kind = CONF_STRING,
      .off = F(database_url),
      .def = "sqlite:var/subgate.db",
      .flags = CONF_PASSWORD,
      .prefixes = database_url_prefixes },
    { .name = "STORE_GROUP_COMMIT",
      .kind = CONF_CHOICE,
      .off = F(store_group_commit),
      .def = "on",
      .choices = on_off_names },
    { .name = "USAGE_LEDGER",
      .kind = CONF_CHOICE,
      .off = F(usage_ledger),
      .def = "on",
      .choices = on_off_names },
    { .name = "APP_WEBHOOK_URL",
      .kind = CONF_STRING,
      .off = F(app_webhook_url),
      .prefixes = http_prefixes,
      .check = check_jwks_url },
    { .name = "APP_WEBHOOK_SECRETS",
      .kind = CONF_SECRET,
      .off = F(app_webhook_secrets),
      .aux_off = F(app_webhook_secret_count),
      .flags = CONF_LIST,
      .max = 8,
      .check = check_app_webhook_secret },
    { .name = "APP_WEBHOOK_RETRY_BASE_MS",
      .kind = CONF_INT,
      .off = F(app_webhook_retry_base_ms),
      .def = "10000",
      .min = 1,
      .max = 3600000 },
    { .name = "QUOTA_THRESHOLDS",
      .kind = CONF_STRING,
      .off = F(quota_thresholds),
      .aux_off = F(quota_threshold_count),
      .flags = CONF_LIST,
      .def = "80,100",
      .max = 8,
      .check = check_percent },
    { .name = "JWT_SECRET", .kind = CONF_SECRET, .off = F(jwt_secret), .check = check_jwt_secret },
    { .name = "JWT_PUBLIC_KEY_FILE",
      .kind = CONF_STRING,
      .off = F(jwt_public_key_file),
      .check = check_readable_file },
    { .name = "JWT_JWKS_URL",
      .kind = CONF_STRING,
      .off = F(jwt_jwks_url),
      .prefixes = http_prefixes,
      .check = check_jwks_url },
    { .name = "JWT_JWKS_FILE",
      .kind = CONF_STRING,
      .off = F(jwt_jwks_file),
      .check = check_readable_file },
    { .name = "JWT_JWKS_MIN_REFRESH",
      .kind = CONF_INT,
      .off = F(jwt_jwks_min_refresh_s),
      .def = "30",
      .min = 1,
      .max = 3600 },
    { .name = "JWT_JWKS_REFRESH",
      .kind = CONF_INT,
      .off = F(jwt_jwks_refresh_s),
      .def = "600",
      .min = 1,
      .max = 86400 },
    { .name = "JWT_ISSUER", .kind = CONF_STRING, .off = F(jwt_issuer) },
    { .name = "JWT_AUDIENCE", .kind = CONF_STRING, .off = F(jwt_audience) },
    { .name = "SERVICE_API_KEYS",
      .kind = CONF_SECRET,
      .off = F(service_api_keys),
      .aux_off = F(service_api_key_count),
      .flags = CONF_LIST,
      .max = 16,
      .check = check_service_key },
    { .name = "ALLOWED_REDIRECT_ORIGINS",
      .kind = CONF_STRING,
      .off = F(allowed_redirect_origins),
      .aux_off = F(allowed_redirect_origin_count),
      .def = "http://localhost:3000",
      .flags = CONF_LIST | CONF_LOWER,
      .max = 32,
      .prefixes = http_prefixes,
      .check = check_origin },
    { .name = "CORS_ORIGINS",
      .kind = CONF_STRING,
      .off = F(cors_origins),
      .aux_off = F(cors_origin_count),
      .def_var = "ALLOWED_REDIRECT_ORIGINS",
      .flags = CONF_LIST | CONF_LOWER,
      .max = 32,
      .prefixes = http_prefixes,
      .check = check_origin },
    { .name = "LISTEN",
      .kind = CONF_ADDR,
      .off = F(listen_host),
      .aux_off = F(listen_port),
      .def = "127.0.0.1:8080" },
    { .name = "TIERS_FILE",
      .kind = CONF_STRING,
      .off = F(tiers_file),
      .check = check_readable_file },
    { .name = "BILLING_THEME_FILE",
      .kind = CONF_STRING,
      .off = F(billing_theme_file),
      .check = check_readable_file },
    { .name = "GATE_RULES_FILE",
      .kind = CONF_STRING,
      .off = F(gate_rules_file),
      .check = check_readable_file },
    { .name = "GATE_CASE_SENSITIVE",
      .kind = CONF_BOOL,
      .off = F(gate_case_sensitive),
      .def = "false",
      .choices = bool_names },
    { .name = "GATE_PATH_PARAMS",
      .kind = CONF_CHOICE,
      .off = F(gate_path_params),
      .def = "refuse",
      .choices = gate_path_params_names },
    { .name = "PAST_DUE_GRACE_DAYS",
      .kind = CONF_INT,
      .off = F(past_due_grace_days),
      .def = "3",
      .min = 0,
      .max = 60 },
    { .name = "MAX_BODY_BYTES",
      .kind = CONF_INT,
      .off = F(max_body_bytes),
      .def = "65536",
      .min = 1024,
      .max = 10485760 },
    { .name = "HTTP_THREADS",
      .kind = CONF_INT,
      .off = F(http_threads),
      .def = "0",
      .min = 0,
      .max = 256 },
    { .name = "STRIPE_CONCURRENCY",
      .kind = CONF_INT,
      .off = F(stripe_concurrency),
      .def = "8",
      .min = 1,
      .max = 256 },
    { .name = "STRIPE_QUEUE_MAX",
      .kind = CONF_INT,
      .off = F(stripe_queue_max),
      .def = "64",
      .min = 1,
      .max = 100000 },
    { .name = "STRIPE_PER_CLIENT_MAX",
      .kind = CONF_INT,
      .off = F(stripe_per_client_max),
      .def = "32",
      .min = 1,
      .max = 100000 },
    { .name = "WRITE_CONCURRENCY",
      .kind = CONF_INT,
      .off = F(write_concurrency),
      .def = "-1",
      .min = -1,
      .max = 256 },
    { .name = "WRITE_QUEUE_MAX",
      .kind = CONF_INT,
      .off = F(write_queue_max),
      .def = "1024",
      .min = 1,
      .max = 100000 },
    { .name = "ENTITLEMENT_CACHE_USERS",
      .kind = CONF_INT,
      .off = F(entitlement_cache_users),
      .def = "65536",
      .min = 0,
      .max = 16777216 },
    { .name = "ENTITLEMENT_CACHE_TTL_MS",
      .kind = CONF_INT,
      .off = F(entitlement_cache_ttl_ms),
      .def = "1000",
      .min = 1,
      .max = 3600000 },
    { .name = "ENTITLEMENT_CACHE_LISTEN",
      .kind = CONF_BOOL,
      .off = F(entitlement_cache_listen),
      .def = "true",
      .choices = bool_names },
    { .name = "ENTITLEMENT_TOKEN_KEY_FILE",
      .kind = CONF_STRING,
      .off = F(ent_token_key_file),
      .check = check_readable_file },
    { .name = "ENTITLEMENT_TOKEN_PUBLIC_KEYS",
      .kind = CONF_STRING,
      .off = F(ent_token_public_keys),
      .aux_off = F(ent_token_public_key_count),
      .flags = CONF_LIST,
      .max = 8,
      .check = check_readable_file },
    { .name = "ENTITLEMENT_TOKEN_TTL",
      .kind = CONF_INT,
      .off = F(ent_token_ttl_s),
      .def = "300",
      .min = 30,
      .max = 86400 },
    { .name = "ENTITLEMENT_TOKEN_ISSUER",
      .kind = CONF_STRING,
      .off = F(ent_token_issuer),
      .def = "subgate" },
    { .name = "ENTITLEMENT_TOKEN_AUDIENCE", .kind = CONF_STRING, .off = F(ent_token_audience) },
    { .name = "LOG_LEVEL",
      .kind = CONF_STRING,
      .off = F(log_level),
      .def = "info",
      .flags = CONF_LOWER,
      .check = check_log_level },
};

#define CONF_VAR_COUNT ARRAY_SIZE(conf_vars)

_Static_assert(ARRAY_SIZE(conf_vars) <= CONFIG_VARS_MAX, "struct config needs a source per row");

static const char *const source_names[] = {
    [CONFIG_SRC_UNSET] = "unset",
    [CONFIG_SRC_DEFAULT] = "default",
    [CONFIG_SRC_DOTENV] = ".env",
    [CONFIG_SRC_ENV] = "env",
};

static PRINTF_LIKE(3, 4) bool reason(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return false;
}

/* The precision that quotes at most ECHO_MAX bytes of <p, n> with "%.*s". */
static int echo_len(size_t n)
{
    return n > ECHO_MAX ? ECHO_MAX : (int)n;
}

static void *field(struct config *c, size_t off)
{
    return (char *)c + off;
}

static const void *cfield(const struct config *c, size_t off)
{
    return (const char *)c + off;
}

/* The first prefix that <p, n> starts with and goes on after, or NULL. */
static const char *match_prefix(const char *const *prefixes, const char *p, size_t n)
{
    for (size_t i = 0; prefixes && prefixes[i]; i++) {
        size_t k = strlen(prefixes[i]);

        if (n > k && memcmp(p, prefixes[i], k) == 0)
            return prefixes[i];
    }
    return NULL;
}

/* "must start with 'a', 'b' or 'c'" */
static bool prefix_reason(const char *const *prefixes, char *why, size_t whylen)
{
    size_t used = 0;

    for (size_t i = 0; prefixes[i]; i++) {
        const char *sep = i == 0 ? "must start with " : prefixes[i + 1] ? ", " : " or ";
        int w = snprintf(why + used, whylen - used, "%s'%s'", sep, prefixes[i]);

        if (w < 0 || (size_t)w >= whylen - used)
            break;
        used += (size_t)w;
    }
    return false;
}

static bool has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

static bool check_token(const char *p, size_t n, char *why, size_t whylen)
{
    if (n > TOKEN_MAX)
        return reason(why, whylen, "must be at most %d bytes", TOKEN_MAX);
    if (memchr(p, ' ', n))
        return reason(why, whylen, "must not contain spaces");
    return true;
}

static bool check_api_base(const char *p, size_t n, char *why, size_t whylen)
{
    char origin[URL_ORIGIN_MAX];
    char *url = xstrndup(p, n);
    bool ok = url_origin(url, origin, sizeof(origin)) && !strpbrk(url, "?#");

    free(url);
    if (!ok)
        return reason(why, whylen, "must be an http:// or https:// URL, got '%.*s'", echo_len(n),
                      p);
    return true;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_name_char(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* "2023-08-16", or with a release name as Stripe now writes them: "2024-09-30.acacia" */
static bool check_api_version(const char *p, size_t n, char *why, size_t whylen)
{
    static const char shape[] = "dddd-dd-dd";
    bool ok = n == 10 || (n > 11 && p[10] == '.');

    for (size_t i = 0; ok && i < 10; i++)
        ok = shape[i] == 'd' ? is_digit(p[i]) : p[i] == '-';
    for (size_t i = 11; ok && i < n; i++)
        ok = is_name_char(p[i]);
    if (!ok)
        return reason(why, whylen, "must look like YYYY-MM-DD or YYYY-MM-DD.name, got '%.*s'",
                      echo_len(n), p);
    return true;
}

static bool check_jwt_secret(const char *p, size_t n, char *why, size_t whylen)
{
    (void)p;
    if (n < 32)
        return reason(why, whylen, "must be at least 32 bytes");
    return true;
}

static bool check_service_key(const char *p, size_t n, char *why, size_t whylen)
{
    if (n < 16)
        return reason(why, whylen, "each key must be at least 16 bytes");
    for (size_t i = 0; i < n; i++)
        if (p[i] <= ' ' || p[i] > '~')
            return reason(why, whylen, "keys must be printable ASCII without spaces");
    return true;
}

/* scheme://host[:port] and nothing more: the redirect allow-list compares origins. */
static bool check_origin(const char *p, size_t n, char *why, size_t whylen)
{
    char origin[URL_ORIGIN_MAX];
    char *url = xstrndup(p, n);
    const char *rest = strstr(url, "://");
    bool ok = url_origin(url, origin, sizeof(origin)) && rest && !strpbrk(rest + 3, "/?#");

    free(url);
    if (!ok)
        return reason(why, whylen, "must be scheme://host[:port] with no path, got '%.*s'",
                      echo_len(n), p);
    return true;
}

static bool check_readable_file(const char *p, size_t n, char *why, size_t whylen)
{
    char *path = xstrndup(p, n);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block start-up */
    struct stat st;
    bool ok = false;

    if (fd < 0)
        reason(why, whylen, "cannot read '%s': %s", path, strerror(errno));
    else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        reason(why, whylen, "'%s' is not a regular file", path);
    else
        ok = true;
    if (fd >= 0)
        close(fd);
    free(path);
    return ok;
}

/* The origin names a loopback host: plain http never leaves the machine. */
static bool origin_is_loopback(const char *origin)
{
    static const char *const hosts[] = { "http://localhost", "http://127.", "http://[::1]" };
    const char *host_end;

    for (size_t i = 0; i < ARRAY_SIZE(hosts); i++) {
        size_t k = strlen(hosts[i]);

        if (strncmp(origin, hosts[i], k) != 0)
            continue;
        if (hosts[i][k - 1] == '.') /* 127.0.0.0/8: the rest of a dotted quad */
            return strspn(origin + k, "0123456789.") == strcspn(origin + k, ":");
        host_end = origin + k;
        return *host_end == '\0' || *host_end == ':';
    }
    return false;
}

/* https://, or http:// to a loopback host only: the keys decide who is a user. */
static bool check_jwks_url(const char *p, size_t n, char *why, size_t whylen)
{
    char origin[URL_ORIGIN_MAX];
    char *url = xstrndup(p, n);
    bool ok = url_origin(url, origin, sizeof(origin)) && !strchr(url, '#');

    free(url);
    if (memchr(p, '@', n)) /* never echoed: it may hold a password */
        return reason(why, whylen,
                      "must be an https:// URL without a user or password in it (the value is "
                      "not shown: it may hold one)");
    if (!ok)
        return reason(why, whylen, "must be an https:// URL, got '%.*s'", echo_len(n), p);
    if (strncmp(origin, "http://", 7) == 0 && !origin_is_loopback(origin))
        return reason(why, whylen,
                      "must be an https:// URL (http:// only for a loopback host), got '%.*s'",
                      echo_len(n), p);
    return true;
}

/* An outgoing webhook secret: signs what the app receives, so as long as a service key. */
static bool check_app_webhook_secret(const char *p, size_t n, char *why, size_t whylen)
{
    if (n < 16)
        return reason(why, whylen, "each secret must be at least 16 bytes, got %zu", n);
    (void)p;
    return true;
}

/* A quota threshold: a whole percentage of the limit, 1-100. */
static bool check_percent(const char *p, size_t n, char *why, size_t whylen)
{
    int64_t v = 0;

    if (parse_i64(p, n, 1, 100, &v) != ERR_OK)
        return reason(why, whylen, "each entry must be a percentage 1-100, got '%.*s'", echo_len(n),
                      p);
    return true;
}

static bool check_log_level(const char *p, size_t n, char *why, size_t whylen)
{
    static const char *const levels[] = { "debug", "info", "warn", "error" };

    for (size_t i = 0; i < ARRAY_SIZE(levels); i++)
        if (str_eq_nocase(p, n, levels[i]))
            return true;
    return reason(why, whylen, "must be debug, info, warn or error, got '%.*s'", echo_len(n), p);
}

/*
 * Stripe's enum for POST /v1/checkout/sessions `locale` (its OpenAPI spec, API version
 * 2023-08-16), spelled as Stripe spells them: "auto" is the browser's locale.
 */
static const char *const checkout_locales[] = {
    "auto", "bg",  "cs", "da",    "de", "el", "en",    "en-GB", "es", "es-419", "et",
    "fi",   "fil", "fr", "fr-CA", "hr", "hu", "id",    "it",    "ja", "ko",     "lt",
    "lv",   "ms",  "mt", "nb",    "nl", "pl", "pt",    "pt-BR", "ro", "ru",     "sk",
    "sl",   "sv",  "th", "tr",    "vi", "zh", "zh-HK", "zh-TW",
};

static bool check_checkout_locale(const char *p, size_t n, char *why, size_t whylen)
{
    size_t used;

    for (size_t i = 0; i < ARRAY_SIZE(checkout_locales); i++)
        if (strlen(checkout_locales[i]) == n && memcmp(p, checkout_locales[i], n) == 0)
            return true;
    used = (size_t)snprintf(why, whylen, "must be one of Stripe Checkout's locales (");
    for (size_t i = 0; i < ARRAY_SIZE(checkout_locales) && used < whylen; i++)
        used +=
            (size_t)snprintf(why + used, whylen - used, "%s%s", i ? ", " : "", checkout_locales[i]);
    if (used < whylen)
        snprintf(why + used, whylen - used, "), got '%.*s'", n > 16 ? 16 : (int)n, p);
    return false;
}

/* Checks one value or list entry against its row. Secrets are never quoted. */
static bool check_item(const struct conf_var *v, const char *p, size_t n, char *why, size_t whylen)
{
    if (n == 0)
        return reason(why, whylen, "empty entry in the list");
    if (v->prefixes && !match_prefix(v->prefixes, p, n))
        return prefix_reason(v->prefixes, why, whylen);
    return !v->check || v->check(p, n, why, whylen);
}

static char *normalize(const struct conf_var *v, char *s)
{
    size_t n = strlen(s);

    while ((v->flags & CONF_TRIM_SLASH) && n > 0 && s[n - 1] == '/')
        s[--n] = '\0';
    for (char *p = s; (v->flags & CONF_LOWER) && *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return s;
}

static void store_item(struct config *c, const struct conf_var *v, size_t i, const char *p,
                       size_t n)
{
    bool list = v->flags & CONF_LIST;
    void *f = field(c, v->off);

    if (v->kind == CONF_SECRET) {
        struct secret *s = list ? *(struct secret **)f : f;

        secret_set(&s[i], p, n);
    } else if (list) {
        (*(char ***)f)[i] = normalize(v, xstrndup(p, n));
    } else {
        *(char **)f = normalize(v, xstrndup(p, n));
    }
}

static void list_alloc(struct config *c, const struct conf_var *v, size_t count)
{
    if (v->kind == CONF_SECRET)
        *(struct secret **)field(c, v->off) = xcalloc(count, sizeof(struct secret));
    else
        *(char ***)field(c, v->off) = xcalloc(count, sizeof(char *));
    *(size_t *)field(c, v->aux_off) = count;
}

static bool set_list(struct config *c, const struct conf_var *v, const char *val, char *why,
                     size_t whylen)
{
    size_t count = 1;

    for (const char *p = val; *p; p++)
        count += *p == ',';
    if (count > (size_t)v->max)
        return reason(why, whylen, "at most %lld entries, got %zu", (long long)v->max, count);
    list_alloc(c, v, count);
    for (size_t i = 0; i < count; i++) {
        const char *item = val;
        size_t n = strcspn(val, ",");

        val += n + (val[n] == ',');
        str_trim(&item, &n);
        if (!check_item(v, item, n, why, whylen))
            return false;
        store_item(c, v, i, item, n);
    }
    return true;
}

static bool set_int(struct config *c, const struct conf_var *v, const char *val, char *why,
                    size_t whylen)
{
    if (parse_i64(val, strlen(val), v->min, v->max, field(c, v->off)) != ERR_OK)
        return reason(why, whylen,
                      v->min < 0 ? "must be an integer from %lld to %lld, got '%.*s'"
                                 : "must be an integer %lld-%lld, got '%.*s'",
                      (long long)v->min, (long long)v->max, echo_len(strlen(val)), val);
    return true;
}

/* The index of val in v->choices (any case), or -1; why lists the choices when it is none. */
static int choice_index(const struct conf_var *v, const char *val, char *why, size_t whylen)
{
    size_t off = 0;

    for (int i = 0; v->choices[i]; i++)
        if (str_eq_nocase(val, strlen(val), v->choices[i]))
            return i;
    off = (size_t)snprintf(why, whylen, "must be");
    for (int i = 0; v->choices[i] && off < whylen; i++)
        off += (size_t)snprintf(why + off, whylen - off, "%s '%s'", i == 0 ? "" : " or",
                                v->choices[i]);
    if (off < whylen)
        snprintf(why + off, whylen - off, ", got '%.*s'", echo_len(strlen(val)), val);
    return -1;
}

static bool set_choice(struct config *c, const struct conf_var *v, const char *val, char *why,
                       size_t whylen)
{
    int i = choice_index(v, val, why, whylen);

    if (i < 0)
        return false;
    if (v->kind == CONF_BOOL)
        *(bool *)field(c, v->off) = i == 1;
    else
        *(int *)field(c, v->off) = i;
    return true;
}

/* "127.0.0.1:8080" or "[::1]:8080": the server binds numeric addresses only. */
static bool set_addr(struct config *c, const struct conf_var *v, const char *val, char *why,
                     size_t whylen)
{
    const char *colon = strrchr(val, ':');
    size_t v6 = val[0] == '[' ? 1 : 0; /* the bracket before an IPv6 address */
    char host[INET6_ADDRSTRLEN];
    unsigned char addr[sizeof(struct in6_addr)];
    int64_t port;

    if (!colon || (v6 && (colon - val < 2 || colon[-1] != ']')))
        return reason(why, whylen, "must be host:port, got '%.*s'", echo_len(strlen(val)), val);
    if (parse_i64(colon + 1, strlen(colon + 1), 1, 65535, &port) != ERR_OK)
        return reason(why, whylen, "port must be 1-65535, got '%.*s'", echo_len(strlen(colon + 1)),
                      colon + 1);
    if (!str_copyn(host, sizeof(host), val + v6, (size_t)(colon - val) - 2 * v6) ||
        inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 1)
        return reason(why, whylen, "host must be a numeric IPv4 address or [IPv6], got '%.*s'",
                      echo_len((size_t)(colon - val)), val);
    *(char **)field(c, v->off) = xstrdup(host);
    *(int64_t *)field(c, v->aux_off) = port;
    return true;
}

static bool apply(struct config *c, const struct conf_var *v, const char *val, char *why,
                  size_t whylen)
{
    if (has_control(val))
        return reason(why, whylen, "must not contain control characters");
    switch (v->kind) {
    case CONF_INT:
        return set_int(c, v, val, why, whylen);
    case CONF_ADDR:
        return set_addr(c, v, val, why, whylen);
    case CONF_BOOL:
    case CONF_CHOICE:
        return set_choice(c, v, val, why, whylen);
    case CONF_STRING:
    case CONF_SECRET:
        break;
    }
    if (v->flags & CONF_LIST)
        return set_list(c, v, val, why, whylen);
    if (!check_item(v, val, strlen(val), why, whylen))
        return false;
    store_item(c, v, 0, val, strlen(val));
    return true;
}

/* The ways to verify user tokens that are set, by name; returns how many. */
static size_t jwt_sources_set(const struct config *c, const char *names[4])
{
    size_t n = 0;

    if (secret_is_set(&c->jwt_secret))
        names[n++] = "JWT_SECRET";
    if (c->jwt_public_key_file)
        names[n++] = "JWT_PUBLIC_KEY_FILE";
    if (c->jwt_jwks_url)
        names[n++] = "JWT_JWKS_URL";
    if (c->jwt_jwks_file)
        names[n++] = "JWT_JWKS_FILE";
    return n;
}

static enum err check_combination(const struct config *c, char *errbuf, size_t errlen)
{
    const char *names[4];

    if (jwt_sources_set(c, names) > 1) {
        snprintf(errbuf, errlen,
                 "set one of JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_URL and JWT_JWKS_FILE, "
                 "not both %s and %s",
                 names[0], names[1]);
        return ERR_INVALID;
    }
    if (c->app_webhook_url && c->app_webhook_secret_count == 0) {
        snprintf(errbuf, errlen, "APP_WEBHOOK_URL: needs APP_WEBHOOK_SECRETS to sign with");
        return ERR_INVALID;
    }
    return ERR_OK;
}

/* The row of variable name, or CONF_VAR_COUNT when it is none of ours. */
static size_t var_index(const char *name)
{
    size_t i = 0;

    while (i < CONF_VAR_COUNT && strcmp(conf_vars[i].name, name) != 0)
        i++;
    return i;
}

/* The default of v: its own, or what the variable it follows (def_var) was set to. */
static const char *default_value(const struct conf_var *v, config_lookup_fn lookup, void *ctx)
{
    const char *val;
    size_t i;

    if (!v->def_var)
        return v->def;
    val = lookup(ctx, v->def_var);
    if (val && *val)
        return val;
    i = var_index(v->def_var);
    return i < CONF_VAR_COUNT ? conf_vars[i].def : NULL;
}

enum err config_load_from(struct config *c, config_lookup_fn lookup, void *ctx, char *errbuf,
                          size_t errlen)
{
    char why[WHY_MAX];
    enum err err = ERR_OK;

    memset(c, 0, sizeof(*c));
    if (errlen)
        errbuf[0] = '\0';
    for (size_t i = 0; i < CONF_VAR_COUNT && !err; i++) {
        const struct conf_var *v = &conf_vars[i];
        const char *val = lookup(ctx, v->name);
        const char *def = default_value(v, lookup, ctx);

        c->source[i] = val && *val ? CONFIG_SRC_ENV : def ? CONFIG_SRC_DEFAULT : CONFIG_SRC_UNSET;
        if (!val || !*val)
            val = def;
        if (val && !apply(c, v, val, why, sizeof(why))) {
            snprintf(errbuf, errlen, "%s: %s", v->name, why);
            err = ERR_INVALID;
        }
    }
    if (!err)
        err = check_combination(c, errbuf, errlen);
    if (err)
        config_release(c);
    return err;
}

/* What config_load looks up: the environment first, then the .env file's values. */
struct env_ctx {
    char *dotenv[CONF_VAR_COUNT];     /* per row, the .env value (owned), NULL when absent */
    bool from_dotenv[CONF_VAR_COUNT]; /* per row, whether the lookup answered from .env */
};

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static enum err collect(void *ctx, const char *key, const char *value)
{
    struct env_ctx *e = ctx;
    size_t i = var_index(key);

    if (i == CONF_VAR_COUNT)
        return ERR_OK; /* other tools keep their variables in the same .env */
    wipe_free(e->dotenv[i]);
    e->dotenv[i] = xstrdup(value);
    return ERR_OK;
}

static const char *env_lookup(void *ctx, const char *name)
{
    struct env_ctx *e = ctx;
    const char *val = getenv(name);
    size_t i = var_index(name);

    if (val && *val)
        return val;
    if (i == CONF_VAR_COUNT || !e->dotenv[i] || !*e->dotenv[i])
        return NULL;
    e->from_dotenv[i] = true;
    return e->dotenv[i];
}

static enum err read_dotenv(const char *path, struct env_ctx *e, char *errbuf, size_t errlen)
{
    char msg[256];
    struct buf b;
    int line = 0;
    enum err err;

    buf_init(&b, DOTENV_MAX_BYTES);
    err = file_read_all(path, &b, errbuf, errlen);
    if (err == ERR_NOT_FOUND) {
        err = ERR_OK; /* a .env file is optional */
        if (errlen)
            errbuf[0] = '\0';
        goto out_release;
    }
    if (err)
        goto out_release;
    err = dotenv_parse(buf_str(&b), b.len, collect, e, &line, msg, sizeof(msg));
    if (err)
        snprintf(errbuf, errlen, "cannot parse '%s' line %d: %s", path, line, msg);
out_release:
    if (b.data)
        explicit_bzero(b.data, b.len); /* the file holds secrets */
    buf_release(&b);
    return err;
}

enum err config_load(struct config *c, const char *dotenv_path, char *errbuf, size_t errlen)
{
    struct env_ctx e = { 0 };
    enum err err = ERR_OK;

    memset(c, 0, sizeof(*c));
    if (dotenv_path)
        err = read_dotenv(dotenv_path, &e, errbuf, errlen);
    if (!err)
        err = config_load_from(c, env_lookup, &e, errbuf, errlen);
    for (size_t i = 0; !err && i < CONF_VAR_COUNT; i++)
        if (e.from_dotenv[i])
            c->source[i] = CONFIG_SRC_DOTENV;
    for (size_t i = 0; i < CONF_VAR_COUNT; i++)
        wipe_free(e.dotenv[i]);
    return err;
}

enum err config_require_serve(const struct config *c, char *errbuf, size_t errlen)
{
    const char *names[4];

    if (jwt_sources_set(c, names) > 0)
        return ERR_OK;
    snprintf(errbuf, errlen,
             "JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_URL or JWT_JWKS_FILE: one is required to "
             "verify user tokens");
    return ERR_INVALID;
}

static void print_secret(const struct conf_var *v, const struct secret *s, FILE *out)
{
    size_t n;
    const char *bytes = (const char *)secret_bytes(s, &n);
    const char *prefix = match_prefix(v->prefixes, bytes, n);

    if (prefix)
        fprintf(out, "%s\u2026(redacted)", prefix);
    else
        fputs("(set, redacted)", out);
}

static void print_secrets(const struct config *c, const struct conf_var *v, FILE *out)
{
    const void *f = cfield(c, v->off);
    bool list = v->flags & CONF_LIST;
    const struct secret *s = list ? *(struct secret *const *)f : f;
    size_t count = list ? *(const size_t *)cfield(c, v->aux_off) : secret_is_set(s);

    if (count == 0)
        fputs("(unset)", out);
    for (size_t i = 0; i < count; i++) {
        if (i > 0)
            fputc(',', out);
        print_secret(v, &s[i], out);
    }
}

/*
 * Prints a URL without its secrets: the password of its user information ("user:PASSWORD@")
 * and a query, which libpq reads options from, password= among them.
 */
static void print_url_redacted(const char *url, FILE *out)
{
    const char *sep = strstr(url, "://");
    size_t start = sep ? (size_t)(sep - url) + 3 : 0, end = start + strcspn(url + start, "/?#");
    size_t query = strcspn(url, "?"), colon = 0, at = 0;

    /* The user information ends at the authority's last '@'; its first ':' starts the password. */
    for (size_t i = start; sep && i < end; i++) {
        if (url[i] == ':' && !colon && !at)
            colon = i;
        else if (url[i] == '@')
            at = i;
    }
    if (colon && at > colon)
        fprintf(out, "%.*s(redacted)%.*s", (int)(colon + 1), url, (int)(query - at), url + at);
    else
        fprintf(out, "%.*s", (int)query, url);
    if (url[query])
        fputs("?(redacted)", out);
}

static void print_strings(const struct config *c, const struct conf_var *v, FILE *out)
{
    const void *f = cfield(c, v->off);
    bool list = v->flags & CONF_LIST;
    char *const *s = list ? *(char **const *)f : f;
    size_t count = list ? *(const size_t *)cfield(c, v->aux_off) : s[0] != NULL;

    if (count == 0)
        fputs("(unset)", out);
    for (size_t i = 0; i < count; i++) {
        if (i > 0)
            fputc(',', out);
        if (v->flags & CONF_PASSWORD)
            print_url_redacted(s[i], out);
        else
            fputs(s[i], out);
    }
}

static void print_value(const struct config *c, const struct conf_var *v, FILE *out)
{
    const char *host;
    long long n;

    switch (v->kind) {
    case CONF_INT:
        fprintf(out, "%lld", (long long)*(const int64_t *)cfield(c, v->off));
        break;
    case CONF_ADDR:
        host = *(char *const *)cfield(c, v->off);
        n = (long long)*(const int64_t *)cfield(c, v->aux_off);
        if (!host)
            fputs("(unset)", out);
        else
            fprintf(out, strchr(host, ':') ? "[%s]:%lld" : "%s:%lld", host, n);
        break;
    case CONF_BOOL:
        fputs(*(const bool *)cfield(c, v->off) ? "true" : "false", out);
        break;
    case CONF_CHOICE:
        fputs(v->choices[*(const int *)cfield(c, v->off)], out);
        break;
    case CONF_STRING:
        print_strings(c, v, out);
        break;
    case CONF_SECRET:
        print_secrets(c, v, out);
        break;
    }
}

void config_print(const struct config *c, FILE *out)
{
    for (size_t i = 0; i < CONF_VAR_COUNT; i++) {
        fprintf(out, "%s=", conf_vars[i].name);
        print_value(c, &conf_vars[i], out);
        fprintf(out, "  # %s\n", source_names[c->source[i]]);
    }
}

bool config_has_stripe(const struct config *c)
{
    return secret_is_set(&c->stripe_secret_key);
}

bool config_has_webhook_secret(const struct config *c)
{
    return c->stripe_webhook_secret_count > 0;
}

static void release_var(struct config *c, const struct conf_var *v)
{
    void *f = field(c, v->off);
    size_t count = (v->flags & CONF_LIST) ? *(size_t *)field(c, v->aux_off) : 0;

    if (v->kind == CONF_INT || v->kind == CONF_BOOL || v->kind == CONF_CHOICE)
        return;
    if (v->kind == CONF_SECRET && !(v->flags & CONF_LIST)) {
        secret_release(f);
    } else if (v->kind == CONF_SECRET) {
        for (size_t i = 0; i < count; i++)
            secret_release(&(*(struct secret **)f)[i]);
        free(*(struct secret **)f);
    } else if (v->flags & CONF_LIST) {
        for (size_t i = 0; i < count; i++)
            free((*(char ***)f)[i]);
        free(*(char ***)f);
    } else {
        free(*(char **)f);
    }
}

void config_release(struct config *c)
{
    for (size_t i = 0; i < CONF_VAR_COUNT; i++)
        release_var(c, &conf_vars[i]);
    memset(c, 0, sizeof(*c));
}
