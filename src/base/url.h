/* url.h: origins of absolute http(s) URLs, for the redirect allow-list (no open redirects). */
#ifndef SUBGATE_BASE_URL_H
#define SUBGATE_BASE_URL_H

#include <stdbool.h>
#include <stddef.h>

#define URL_ORIGIN_MAX 300

/*
 * Writes the normalized origin of an absolute http or https URL into origin[len]:
 * lower-case scheme and host, the port only when it is not the scheme's default
 * ("https://app.example.com", "http://localhost:3000"). Returns false for anything else:
 * relative or scheme-relative URLs, other schemes, user info, control bytes, spaces or
 * backslashes anywhere, an empty or over-long host, a host that is not a DNS name (labels of
 * letters, digits and '-', no empty label, no trailing dot), an IPv4 address or a bracketed
 * IPv6 address (so no percent-encoding), a port that is empty, has a leading zero or a sign, is
 * out of range, or is followed by anything ("http://localhost:3000:80" is refused).
 */
bool url_origin(const char *url, char *origin, size_t len);

/* True when url's origin equals one of the n origins (each normalized the same way). */
bool url_origin_is_allowed(const char *url, const char *const *origins, size_t n);

#endif /* SUBGATE_BASE_URL_H */
