/* url.c: strict origin extraction from absolute http(s) URLs. */
#include "base/url.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/str.h"

static bool url_has_bad_byte(const char *url)
{
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p <= 0x20 || *p == 0x7f || *p == '\\')
            return true;
    return false;
}

static bool host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '[' || c == ']' || c == ':';
}

/* Splits "host[:port]" of length n; returns the port (or def), -1 when malformed. */
static int64_t split_port(const char *auth, size_t n, size_t *host_len, int64_t def)
{
    const char *colon = NULL;
    int64_t port;

    for (size_t i = 0; i < n; i++) {
        if (auth[i] == ']')
            colon = NULL; /* colons inside an IPv6 literal are not the port's */
        else if (auth[i] == ':')
            colon = auth + i;
    }
    if (!colon) {
        *host_len = n;
        return def;
    }
    *host_len = (size_t)(colon - auth);
    if (parse_i64(colon + 1, n - *host_len - 1, 1, 65535, &port) != ERR_OK)
        return -1;
    return port;
}

bool url_origin(const char *url, char *origin, size_t len)
{
    const char *scheme;
    int64_t def, port;
    size_t skip, auth_len, host_len;

    if (url_has_bad_byte(url))
        return false;
    if (strncasecmp(url, "http://", 7) == 0) {
        scheme = "http", def = 80, skip = 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        scheme = "https", def = 443, skip = 8;
    } else {
        return false;
    }
    const char *auth = url + skip;
    auth_len = strcspn(auth, "/?#");
    if (auth_len == 0 || memchr(auth, '@', auth_len))
        return false;
    port = split_port(auth, auth_len, &host_len, def);
    if (port < 0 || host_len == 0 || host_len > 253)
        return false;
    for (size_t i = 0; i < host_len; i++)
        if (!host_char_ok(auth[i]))
            return false;
    int w = port == def ? snprintf(origin, len, "%s://%.*s", scheme, (int)host_len, auth)
                        : snprintf(origin, len, "%s://%.*s:%lld", scheme, (int)host_len, auth,
                                   (long long)port);
    if (w < 0 || (size_t)w >= len)
        return false;
    for (char *p = origin; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return true;
}

bool url_origin_is_allowed(const char *url, const char *const *origins, size_t n)
{
    char want[URL_ORIGIN_MAX], have[URL_ORIGIN_MAX];

    if (!url_origin(url, have, sizeof(have)))
        return false;
    for (size_t i = 0; i < n; i++)
        if (url_origin(origins[i], want, sizeof(want)) && strcmp(want, have) == 0)
            return true;
    return false;
}
