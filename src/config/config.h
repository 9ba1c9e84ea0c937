/*
 * config.h: the service configuration, read once at start-up from the environment and a .env
 * file through one table of variables (config.c), then immutable (SPEC §1, STYLE rule 45).
 * Nothing outside config/ calls getenv.
 */
#ifndef SUBGATE_CONFIG_CONFIG_H
#define SUBGATE_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/base.h"
#include "base/err.h"
#include "base/secret.h"

#define CONFIG_VARS_MAX 64 /* room in struct config for one source per table row */

/* Where a variable's value came from. */
enum config_source {
    CONFIG_SRC_UNSET = 0, /* no value and no default */
    CONFIG_SRC_DEFAULT,   /* the table's default */
    CONFIG_SRC_DOTENV,    /* the .env file */
    CONFIG_SRC_ENV,       /* the real environment (or the lookup given to config_load_from) */
};

/* GATE_PATH_PARAMS: what the app's router does with ';' path parameters. */
enum config_path_params {
    CONFIG_PATH_PARAMS_REFUSE = 0, /* "refuse": the gate refuses a path with ';' */
    CONFIG_PATH_PARAMS_STRIP = 1,  /* "strip": the router drops them (Tomcat, Spring) */
};

/*
 * The effective configuration. Strings are owned and NUL-terminated, NULL when unset; lists are
 * owned arrays with their count. Release with config_release().
 */
struct config {
    struct secret stripe_secret_key;       /* STRIPE_SECRET_KEY: sk_test_, sk_live_ or rk_ */
    char *stripe_publishable_key;          /* STRIPE_PUBLISHABLE_KEY: pk_test_ or pk_live_ */
    struct secret *stripe_webhook_secrets; /* STRIPE_WEBHOOK_SECRET: whsec_..., for rotation */
    size_t stripe_webhook_secret_count;    /* 0 to 8 */
    char *stripe_premium_price_id;         /* STRIPE_PREMIUM_PRICE_ID: price of tier 'premium' */
    char *stripe_plus_price_id;            /* STRIPE_PLUS_PRICE_ID: price of tier 'plus' */
    char *stripe_premium_annual_price_id;  /* STRIPE_PREMIUM_ANNUAL_PRICE_ID: premium per year */
    char *stripe_plus_annual_price_id;     /* STRIPE_PLUS_ANNUAL_PRICE_ID: plus per year */
    char *stripe_api_base;                 /* STRIPE_API_BASE: http(s) URL, no trailing slash */
    char *stripe_api_version;              /* STRIPE_API_VERSION: "YYYY-MM-DD[.name]" */
    bool checkout_promotion_codes;         /* CHECKOUT_PROMOTION_CODES: allow_promotion_codes */
    bool checkout_automatic_tax;           /* CHECKOUT_AUTOMATIC_TAX: tax, address and tax ID */
    char *checkout_locale;                 /* CHECKOUT_LOCALE: a Checkout locale, NULL: not sent */
    char *database_url;                    /* DATABASE_URL: sqlite:PATH or postgres(ql)://... */
    int store_group_commit;                /* STORE_GROUP_COMMIT: 1 on, 0 off */
    int usage_ledger;                      /* USAGE_LEDGER: 1 on, 0 off */
    struct secret jwt_secret;              /* JWT_SECRET: HS256 key, at least 32 bytes */
    char *jwt_public_key_file;             /* JWT_PUBLIC_KEY_FILE: readable PEM file */
    char *jwt_jwks_url;                    /* JWT_JWKS_URL: https (http for loopback) JWKS */
    char *jwt_jwks_file;                   /* JWT_JWKS_FILE: readable JWKS JSON file */
    int64_t jwt_jwks_min_refresh_s;        /* JWT_JWKS_MIN_REFRESH: fetches on unknown kid, apart */
    int64_t jwt_jwks_refresh_s;            /* JWT_JWKS_REFRESH: periodic fetch interval */
    char *jwt_issuer;                      /* JWT_ISSUER: required "iss" when set */
    char *jwt_audience;                    /* JWT_AUDIENCE: required "aud" when set */
    struct secret *service_api_keys;       /* SERVICE_API_KEYS: each at least 16 bytes */
    size_t service_api_key_count;          /* 0 to 16 */
    char **allowed_redirect_origins;       /* ALLOWED_REDIRECT_ORIGINS: lower-case origins */
    size_t allowed_redirect_origin_count;  /* 1 to 32 with the default */
    char **cors_origins;                   /* CORS_ORIGINS: lower-case origins browsers call from */
    size_t cors_origin_count;              /* 1 to 32; unset: ALLOWED_REDIRECT_ORIGINS */
    char *listen_host;                     /* LISTEN: numeric address, IPv6 without brackets */
    int64_t listen_port;                   /* LISTEN: 1-65535 */
    char *tiers_file;                      /* TIERS_FILE: readable JSON file, NULL: built-in */
    char *billing_theme_file;      /* BILLING_THEME_FILE: readable CSS, /billing/theme.css */
    char *gate_rules_file;         /* GATE_RULES_FILE: readable JSON file, NULL: built-in */
    bool gate_case_sensitive;      /* GATE_CASE_SENSITIVE: the app's router tells case */
    int gate_path_params;          /* GATE_PATH_PARAMS: enum config_path_params */
    int64_t past_due_grace_days;   /* PAST_DUE_GRACE_DAYS: 0-60; past_due keeps the tier */
    int64_t max_body_bytes;        /* MAX_BODY_BYTES: request body cap, 1024-10485760 */
    int64_t http_threads;          /* HTTP_THREADS: 1-256, 0 = one per core */
    int64_t stripe_concurrency;    /* STRIPE_CONCURRENCY: requests calling Stripe at once */
    int64_t stripe_queue_max;      /* STRIPE_QUEUE_MAX: waiting for those, then 503 */
    int64_t stripe_per_client_max; /* STRIPE_PER_CLIENT_MAX: one client's, then 429 */
    int64_t write_concurrency; /* WRITE_CONCURRENCY: hot writes in flight, 0 inline, -1 by store */
    int64_t write_queue_max;   /* WRITE_QUEUE_MAX: waiting for those, then 503 */
    int64_t entitlement_cache_users;    /* ENTITLEMENT_CACHE_USERS: entries, 0 = no cache */
    int64_t entitlement_cache_ttl_ms;   /* ENTITLEMENT_CACHE_TTL_MS: an entry's life, 1-3600000 */
    bool entitlement_cache_listen;      /* ENTITLEMENT_CACHE_LISTEN: PostgreSQL LISTEN/NOTIFY */
    char *app_webhook_url;              /* APP_WEBHOOK_URL: outgoing events go here; NULL: none */
    struct secret *app_webhook_secrets; /* APP_WEBHOOK_SECRETS: each >= 16 bytes; first signs */
    size_t app_webhook_secret_count;    /* 0 to 8 */
    int64_t app_webhook_retry_base_ms;  /* APP_WEBHOOK_RETRY_BASE_MS: first retry delay */
    char **quota_thresholds;            /* QUOTA_THRESHOLDS: percentages 1-100 */
    size_t quota_threshold_count;       /* 1 to 8 */
    char *ent_token_key_file;           /* ENTITLEMENT_TOKEN_KEY_FILE: P-256/Ed25519 PEM */
    char **ent_token_public_keys;       /* ENTITLEMENT_TOKEN_PUBLIC_KEYS: previous keys' PEMs */
    size_t ent_token_public_key_count;  /* 0 to 8 */
    int64_t ent_token_ttl_s;            /* ENTITLEMENT_TOKEN_TTL: a token's life, 30-86400 */
    char *ent_token_issuer;             /* ENTITLEMENT_TOKEN_ISSUER: "iss" of the tokens */
    char *ent_token_audience;           /* ENTITLEMENT_TOKEN_AUDIENCE: "aud", NULL: none */
    char *log_level;                    /* LOG_LEVEL: debug, info, warn or error */
    enum config_source source[CONFIG_VARS_MAX]; /* per table row, in table order */
};

/* Returns the value of variable name, or NULL when it is unset. Borrowed by the loader. */
typedef const char *(*config_lookup_fn)(void *ctx, const char *name);

/*
 * Fills c (which need not be initialized) from lookup: for each variable of the table, the
 * looked-up value, or its default when that is NULL or empty. Every value is validated and
 * normalized. On the first bad value returns ERR_INVALID, leaves c empty (config_release is
 * then a harmless no-op) and writes one line to errbuf[errlen] naming the variable, as in
 * "LISTEN: port must be 1-65535, got '99999'". A secret's value never appears in it.
 */
MUST_CHECK enum err config_load_from(struct config *c, config_lookup_fn lookup, void *ctx,
                                     char *errbuf, size_t errlen);

/*
 * config_load_from() over the real environment and the .env file at dotenv_path (NULL: none):
 * the environment wins, then .env, then the default. A missing .env is fine; an unreadable or
 * malformed one (larger than DOTENV_MAX_BYTES, a bad line) is ERR_INVALID or ERR_TOO_LARGE with
 * errbuf naming the file and the line.
 */
MUST_CHECK enum err config_load(struct config *c, const char *dotenv_path, char *errbuf,
                                size_t errlen);

/*
 * What serve needs beyond a valid load: a way to verify user tokens (one of JWT_SECRET,
 * JWT_PUBLIC_KEY_FILE, JWT_JWKS_URL and JWT_JWKS_FILE). ERR_INVALID with one line
 * in errbuf when it is missing.
 */
MUST_CHECK enum err config_require_serve(const struct config *c, char *errbuf, size_t errlen);

/*
 * Prints every variable in table order as "NAME=value  # source", one per line. Secrets show
 * at most their well-known prefix ("sk_test_…(redacted)", "(set, redacted)"); lists are
 * comma-separated; unset variables print "(unset)".
 */
void config_print(const struct config *c, FILE *out);

/* True when STRIPE_SECRET_KEY is set: the Stripe endpoints can work. */
bool config_has_stripe(const struct config *c);

/* True when at least one STRIPE_WEBHOOK_SECRET is set: webhooks can be verified. */
bool config_has_webhook_secret(const struct config *c);

/* Frees every field and wipes the secrets; c is empty afterwards. */
void config_release(struct config *c);

#endif /* SUBGATE_CONFIG_CONFIG_H */
