/* test_jwt_sign.c: tokens minted by `subgate token` pass our own verifier, claims intact. */
#include "auth/jwt.h"
#include "auth/jwt_sign.h"
#include "t.h"

#define NOW INT64_C(1800000000)

static const struct {
    const char *sub, *email, *iss, *aud;
    int64_t verify_at;
    const char *why; /* "ok" or the refusal */
} rows[] = {
    { "user_1", "u1@example.com", NULL, NULL, NOW, "ok" },
    { "user_2", NULL, NULL, NULL, NOW + 3599, "ok" },
    { "user_3", NULL, NULL, NULL, NOW + 3600 + 61, "token expired" },
    { "user_4", NULL, "https://issuer.example", "subgate", NOW, "ok" },
    { "user_5", NULL, "https://other.example", "subgate", NOW, "wrong issuer" },
    { "user_6", NULL, "https://issuer.example", "other", NOW, "wrong audience" },
    { "ünïcode-üser", "ü@example.com", NULL, NULL, NOW, "ok" },
};

int main(void)
{
    static const char key[] = "0123456789abcdef0123456789abcdef-test";
    struct secret s = { 0 };
    struct jwt_verifier *plain = NULL, *strict = NULL;

    secret_set(&s, key, sizeof(key) - 1);
    T_OK(jwt_verifier_new_hmac(&s, NULL, NULL, &plain) == ERR_OK, "plain verifier");
    T_OK(jwt_verifier_new_hmac(&s, "https://issuer.example", "subgate", &strict) == ERR_OK,
         "strict verifier");
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct jwt_mint m = { rows[i].sub, rows[i].email, rows[i].iss, rows[i].aud, NOW, 3600 };
        struct buf tok;
        struct jwt_claims c;
        const char *why = "";
        const struct jwt_verifier *v = rows[i].iss ? strict : plain;

        buf_init(&tok, 8192);
        T_OK(jwt_sign_hs256(&s, &m, &tok) == ERR_OK, "row %zu signs", i);
        enum err e = jwt_verify(v, tok.data, tok.len, rows[i].verify_at, &c, &why);
        T_EQ_STR(why, rows[i].why, "row %zu verdict", i);
        if (e == ERR_OK) {
            T_EQ_STR(c.sub, rows[i].sub, "row %zu sub", i);
            T_EQ_STR(c.email, rows[i].email ? rows[i].email : "", "row %zu email", i);
            T_EQ_I64(c.exp, NOW + 3600, "row %zu exp", i);
        }
        buf_release(&tok);
    }
    /* The verified-token cache must not change an answer: times, verifier and bytes count. */
    struct jwt_mint m = { "cached", NULL, NULL, NULL, NOW, 600 };
    struct buf tok;
    struct jwt_claims c;
    const char *why = "";
    struct secret other_key = { 0 };
    struct jwt_verifier *other = NULL;

    buf_init(&tok, 8192);
    secret_set(&other_key, "another-key-another-key-another-key", 35);
    T_OK(jwt_verifier_new_hmac(&other_key, NULL, NULL, &other) == ERR_OK, "other verifier");
    T_OK(jwt_sign_hs256(&s, &m, &tok) == ERR_OK, "cached token signs");
    for (int round = 0; round < 2; round++) {
        (void)!jwt_verify(plain, tok.data, tok.len, NOW, &c, &why); /* answer checked below */
        T_EQ_STR(why, "ok", "round %d: valid now", round);
        (void)!jwt_verify(plain, tok.data, tok.len, NOW + 600 + 61, &c, &why);
        T_EQ_STR(why, "token expired", "round %d: expired later, also after a cache hit", round);
        (void)!jwt_verify(other, tok.data, tok.len, NOW, &c, &why);
        T_EQ_STR(why, "bad signature", "round %d: another verifier does not hit the cache", round);
        char saved = tok.data[tok.len - 2];
        tok.data[tok.len - 2] = saved == 'A' ? 'B' : 'A';
        (void)!jwt_verify(plain, tok.data, tok.len, NOW, &c, &why);
        T_EQ_STR(why, "bad signature", "round %d: other bytes do not hit the cache", round);
        tok.data[tok.len - 2] = saved;
    }
    buf_release(&tok);
    jwt_verifier_free(other);
    secret_release(&other_key);
    jwt_verifier_free(plain);
    jwt_verifier_free(strict);
    secret_release(&s);
    return t_done();
}
