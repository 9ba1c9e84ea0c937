/* b64url.c: strict unpadded base64url decoding, and encoding, for JOSE (see b64url.h). */
#include "base/b64url.h"

#include <stdint.h>

/* Returns the 6-bit value of a base64url character, or -1. */
static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

bool b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *out_len)
{
    unsigned acc = 0, bits = 0;
    size_t o = 0;

    if (n % 4 == 1 || n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap)
        return false;
    for (size_t i = 0; i < n; i++) {
        int d = b64url_value((unsigned char)s[i]);
        if (d < 0)
            return false;
        acc = ((acc << 6) | (unsigned)d) & 0x3fffu;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (acc & ((1u << bits) - 1))
        return false;
    *out_len = o;
    return true;
}

enum err b64url_encode(struct buf *out, const unsigned char *p, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    enum err err = ERR_OK;

    for (size_t i = 0; i < n && !err; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        size_t left = n - i;
        if (left > 1)
            v |= (uint32_t)p[i + 1] << 8;
        if (left > 2)
            v |= p[i + 2];
        char q[4] = { abc[(v >> 18) & 63], abc[(v >> 12) & 63], abc[(v >> 6) & 63], abc[v & 63] };
        err = buf_append(out, q, left > 2 ? 4 : left + 1);
    }
    return err;
}
