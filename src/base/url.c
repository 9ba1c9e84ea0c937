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

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A DNS name or IPv4 address: labels of [A-Za-z0-9-], no empty label, no trailing dot. */
static bool reg_name_ok(const char *h, size_t n)
{
    size_t label = 0;

    for (size_t i = 0; i < n; i++) {
        if (h[i] == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (is_alnum(h[i]) || h[i] == '-') {
            label++;
        } else {
            return false;
        }
    }
    return label > 0;
}

/* "[" IPv6 "]": hex digits, colons and dots (an embedded IPv4) inside, at least one colon. */
static bool ip_literal_ok(const char *h, size_t n)
{
    bool colon = false;

    if (n < 4 || h[0] != '[' || h[n - 1] != ']')
        return false;
    for (size_t i = 1; i + 1 < n; i++) {
        if (h[i] == ':')
            colon = true;
        else if (str_hex_digit(h[i]) < 0 && h[i] != '.')
            return false;
    }
    return colon;
}

/* The length of the host at the start of authority <auth, n>: an IP literal or a name. */
static size_t host_len_of(const char *auth, size_t n)
{
    if (n > 0 && auth[0] == '[') {
        const char *close = memchr(auth, ']', n);
        return close ? (size_t)(close - auth) + 1 : 0;
    }
    const char *colon = memchr(auth, ':', n);
    return colon ? (size_t)(colon - auth) : n;
}

/*
 * Splits authority <auth, n> into a host and an optional ":port" of 1-5 digits, no leading zero;
 * returns the port (or def), -1 when malformed: anything after the port (a second port), an
 * empty port, a host that is neither a DNS name, an IPv4 address nor a bracketed IPv6 address.
 */
static int64_t split_port(const char *auth, size_t n, size_t *host_len, int64_t def)
{
    size_t h = host_len_of(auth, n);
    int64_t port = def;

    if (h == 0 || h > 253)
        return -1;
    if (!(auth[0] == '[' ? ip_literal_ok(auth, h) : reg_name_ok(auth, h)))
        return -1;
    *host_len = h;
    if (h == n)
        return port;
    if (auth[h] != ':' || n - h - 1 > 5 || auth[h + 1] == '0')
        return -1;
    for (size_t i = h + 1; i < n; i++)
        if (auth[i] < '0' || auth[i] > '9')
            return -1;
    if (parse_i64(auth + h + 1, n - h - 1, 1, 65535, &port) != ERR_OK)
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
    if (port < 0)
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
