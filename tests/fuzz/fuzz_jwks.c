/*
 * fuzz_jwks.c: libFuzzer target for auth/jwks, the parser of the key sets identity providers
 * publish (untrusted bytes fetched over the network). Whatever the input: a refusal leaves no
 * set and says why; a set holds 1..JWKS_KEYS_MAX keys, each RS256 or ES256 with a key, found
 * again by its kid; and it frees cleanly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jwks_keys *ks = NULL;
    struct jwks_parse_info info = { 0 };
    char errbuf[256] = "";
    enum err err = jwks_keys_parse((const char *)data, size, &ks, &info, errbuf, sizeof(errbuf));

    if (err != ERR_OK) {
        if (ks || !errbuf[0])
            abort(); /* a refusal makes no set and says why */
        return 0;
    }
    if (!ks || jwks_keys_count(ks) == 0 || jwks_keys_count(ks) > JWKS_KEYS_MAX)
        abort();
    for (size_t i = 0; i < jwks_keys_count(ks); i++) {
        const struct jwks_key *k = jwks_keys_at(ks, i);
        if (!k->pkey || (k->alg != JWT_RS256 && k->alg != JWT_ES256))
            abort();
        if (k->has_kid && jwks_keys_find(ks, k->kid) != k)
            abort(); /* kids are unique: the first one wins */
        if (!k->has_kid && k->kid[0])
            abort();
    }
    jwks_keys_release(jwks_keys_ref(ks)); /* a borrowed reference goes back */
    jwks_keys_release(ks);
    return 0;
}
