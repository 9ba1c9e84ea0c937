/* service_key.c: parsing and constant-time matching of the service API key set. */
#include "auth/service_key.h"

#include <stdio.h>
#include <string.h>

#include "base/str.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x)  STRINGIFY_(x)
#define MIN_LEN_TEXT  STRINGIFY(SERVICE_KEY_MIN_LEN)

/* Keys travel in an Authorization header, so anything but visible ASCII is a typo. */
static bool key_chars_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

static enum err key_check(const char *s, size_t n, size_t index, char *errbuf, size_t errlen)
{
    const char *what = NULL;

    if (n == 0)
        what = "is empty";
    else if (n < SERVICE_KEY_MIN_LEN)
        what = "is shorter than " MIN_LEN_TEXT " bytes";
    else if (!key_chars_ok(s, n))
        what = "holds a space, control or non-ASCII byte";
    if (!what)
        return ERR_OK;
    snprintf(errbuf, errlen, "service key %zu of the list %s", index + 1, what);
    return ERR_INVALID;
}

enum err service_keys_parse(struct service_keys *k, const char *list, char *errbuf, size_t errlen)
{
    const char *p = list;
    enum err err = ERR_OK;

    for (;;) {
        const char *comma = strchr(p, ',');
        const char *s = p;
        size_t n = comma ? (size_t)(comma - p) : strlen(p);

        str_trim(&s, &n);
        if (k->count == SERVICE_KEYS_MAX) {
            snprintf(errbuf, errlen, "more than %d service keys", SERVICE_KEYS_MAX);
            err = ERR_INVALID;
        } else {
            err = key_check(s, n, k->count, errbuf, errlen);
        }
        if (err)
            break;
        secret_set(&k->keys[k->count++], s, n);
        if (!comma)
            break;
        p = comma + 1;
    }
    if (err)
        service_keys_release(k);
    return err;
}

enum err service_keys_from_secrets(struct service_keys *k, const struct secret *s, size_t n)
{
    size_t len;

    if (n > SERVICE_KEYS_MAX)
        return ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *bytes = secret_bytes(&s[i], &len);
        secret_set(&k->keys[i], bytes, len);
    }
    k->count = n;
    return ERR_OK;
}

void service_keys_release(struct service_keys *k)
{
    for (size_t i = 0; i < k->count; i++)
        secret_release(&k->keys[i]);
    k->count = 0;
}

bool service_keys_match(const struct service_keys *k, const char *presented, size_t len)
{
    unsigned hits = 0;

    for (size_t i = 0; i < k->count; i++)
        hits |= (unsigned)secret_equal(&k->keys[i], presented, len);
    return hits != 0;
}
