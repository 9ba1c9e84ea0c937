/*
 * fuzz_url.c: libFuzzer target for base/url, the redirect allow-list (ALLOWED_REDIRECT_ORIGINS).
 * An accepted origin is lower case, parses again to itself, and a URL the allow-list accepts
 * has, read independently ("scheme://authority" up to the first '/', '?' or '#'), exactly the
 * scheme and authority of an allowed entry, its default port written or not.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const allowed[] = { "http://localhost:3000", "https://app.example.com",
                                       "http://[::1]:8080" };

/* Every spelling of an allowed origin's scheme and authority, lower-cased. */
static const char *const spellings[] = {
    "http://localhost:3000",
    "https://app.example.com",
    "https://app.example.com:443",
    "http://[::1]:8080",
};

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* The URL's "scheme://authority", lower-cased, into out[len]; false when it has none. */
static int scheme_authority(const char *url, char *out, size_t len)
{
    const char *sep = strstr(url, "://");
    size_t n;

    if (!sep)
        return 0;
    n = (size_t)(sep - url) + 3 + strcspn(sep + 3, "/?#");
    if (n >= len)
        return 0;
    memcpy(out, url, n);
    out[n] = '\0';
    lower(out);
    return 1;
}

static void check_origin(const char *url)
{
    char origin[URL_ORIGIN_MAX], again[URL_ORIGIN_MAX];

    if (!url_origin(url, origin, sizeof(origin)))
        return;
    for (const char *p = origin; *p; p++)
        if ((*p >= 'A' && *p <= 'Z') || *p == '@' || *p == '\\' || *p == '%')
            abort();
    if (!url_origin(origin, again, sizeof(again)) || strcmp(origin, again) != 0)
        abort(); /* an origin is a fixed point */
}

static void check_allowed(const char *url)
{
    char sa[URL_ORIGIN_MAX];
    size_t i = 0;

    if (!url_origin_is_allowed(url, allowed, sizeof(allowed) / sizeof(allowed[0])))
        return;
    if (!scheme_authority(url, sa, sizeof(sa)))
        abort();
    while (i < sizeof(spellings) / sizeof(spellings[0]) && strcmp(sa, spellings[i]) != 0)
        i++;
    if (i == sizeof(spellings) / sizeof(spellings[0]))
        abort(); /* accepted, but another authority than an allowed one */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = malloc(size + 1);

    if (!url)
        return 0;
    memcpy(url, data, size);
    url[size] = '\0';
    check_origin(url);
    check_allowed(url);
    free(url);
    return 0;
}
