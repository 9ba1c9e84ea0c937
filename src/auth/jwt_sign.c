/* jwt_sign.c: HS256 signing with OpenSSL's one-shot HMAC. */
#include "auth/jwt_sign.h"

#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/b64url.h"

static json_t *claims_json(const struct jwt_mint *m)
{
    int64_t exp = m->iat + m->ttl_s;
    json_t *c = json_pack("{s:s?, s:I, s:I}", "sub", m->sub, "iat", (json_int_t)m->iat, "exp",
                          (json_int_t)exp);

    if (c && m->email)
        json_object_set_new(c, "email", json_string(m->email));
    if (c && m->issuer)
        json_object_set_new(c, "iss", json_string(m->issuer));
    if (c && m->audience)
        json_object_set_new(c, "aud", json_string(m->audience));
    return c;
}

enum err jwt_sign_hs256(const struct secret *key, const struct jwt_mint *m, struct buf *out)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    size_t key_len, start = out->len;
    const unsigned char *k = secret_bytes(key, &key_len);
    json_t *claims = claims_json(m);
    char *payload = claims ? json_dumps(claims, JSON_COMPACT) : NULL;
    enum err err = ERR_INVALID;

    if (!payload || !k)
        goto out;
    if ((err = b64url_encode(out, (const unsigned char *)header, strlen(header))) ||
        (err = buf_puts(out, ".")) ||
        (err = b64url_encode(out, (const unsigned char *)payload, strlen(payload))))
        goto out;
    if (!HMAC(EVP_sha256(), k, (int)key_len, (const unsigned char *)out->data + start,
              out->len - start, mac, &mac_len)) {
        err = ERR_INTERNAL;
        goto out;
    }
    if ((err = buf_puts(out, ".")) == ERR_OK)
        err = b64url_encode(out, mac, mac_len);
out:
    free(payload);
    json_decref(claims);
    return err;
}
