/*
 * test_jwt.c: unit tests of auth/jwt. HS256 cases are signed here; RS256, ES256 and more HS256
 * cases come from tests/fixtures/jwt (signed by Node's crypto, see make_tokens.js there).
 */
#include "t.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/jwt.h"
#include "base/secret.h"

#define NOW       INT64_C(1800000000)
#define HS_SECRET "subgate-fixture-secret-0123456789abcdef" /* as in make_tokens.js */
#define ISSUER    "https://issuer.example"
#define AUDIENCE  "subgate"
#define FIXTURES  "tests/fixtures/jwt/"
#define TOKENS    FIXTURES "tokens.tsv"
#define TOKEN_BUF (4 * JWT_TOKEN_MAX)

/* One verifier per algorithm, configured as the fixtures expect. */
static struct jwt_verifier *verifiers[3];
static struct jwt_verifier *plain; /* HS256 without issuer and audience */

/* ---- token building ---- */

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Appends the unpadded base64url of <p, n> at dst[*pos], staying inside dst[cap]. */
static void b64url_put(char *dst, size_t cap, size_t *pos, const void *p, size_t n)
{
    const unsigned char *s = p;
    unsigned acc = 0, bits = 0;

    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | s[i];
        bits += 8;
        while (bits >= 6 && *pos + 1 < cap) {
            bits -= 6;
            dst[(*pos)++] = b64url_alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0 && *pos + 1 < cap)
        dst[(*pos)++] = b64url_alphabet[(acc << (6 - bits)) & 63];
    dst[*pos] = '\0';
}

static void text_put(char *dst, size_t cap, size_t *pos, const char *s)
{
    size_t n = strlen(s);

    if (*pos + n < cap) {
        memcpy(dst + *pos, s, n);
        *pos += n;
    }
    dst[*pos] = '\0';
}

enum sig_mode {
    SIG_HMAC,   /* header.payload.hmac */
    SIG_EMPTY,  /* header.payload. */
    SIG_ABSENT, /* header.payload */
};

/* Builds a token from literal JSON, signed with HS_SECRET as the mode says; returns its length. */
static size_t make_token(const char *header, const char *payload, enum sig_mode mode, char *dst,
                         size_t cap)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    size_t pos = 0;

    b64url_put(dst, cap, &pos, header, strlen(header));
    text_put(dst, cap, &pos, ".");
    b64url_put(dst, cap, &pos, payload, strlen(payload));
    if (mode == SIG_ABSENT)
        return pos;
    HMAC(EVP_sha256(), HS_SECRET, (int)strlen(HS_SECRET), (const unsigned char *)dst, pos, mac,
         &mac_len);
    text_put(dst, cap, &pos, ".");
    if (mode == SIG_HMAC)
        b64url_put(dst, cap, &pos, mac, mac_len);
    return pos;
}

static const char *verify_why(const struct jwt_verifier *v, const char *token, size_t len,
                              struct jwt_claims *claims)
{
    const char *why = NULL;
    enum err err = jwt_verify(v, token, len, NOW, claims, &why);

    if ((err == ERR_OK) != (strcmp(why, "ok") == 0))
        return "err and why disagree";
    return why;
}

/* ---- setup ---- */

static const struct {
    enum jwt_alg alg;
    const char *pem; /* NULL: the HS256 secret */
} verifier_rows[] = {
    { JWT_HS256, NULL },
    { JWT_RS256, FIXTURES "rsa_public.pem" },
    { JWT_ES256, FIXTURES "ec_public.pem" },
};

static void setup_verifiers(void)
{
    struct secret key = { 0 };
    char errbuf[256] = "";

    secret_set(&key, HS_SECRET, strlen(HS_SECRET));
    for (size_t i = 0; i < ARRAY_SIZE(verifier_rows); i++) {
        const char *pem = verifier_rows[i].pem;
        enum err err =
            pem ? jwt_verifier_new_pem(pem, ISSUER, AUDIENCE, &verifiers[i], errbuf, sizeof(errbuf))
                : jwt_verifier_new_hmac(&key, ISSUER, AUDIENCE, &verifiers[i]);
        T_EQ_I64(err, ERR_OK, "setup: verifier %s (%s)", jwt_alg_name(verifier_rows[i].alg),
                 errbuf);
        if (err)
            exit(t_done() | 1);
        T_EQ_I64(jwt_verifier_alg(verifiers[i]), verifier_rows[i].alg, "setup: %s pinned",
                 jwt_alg_name(verifier_rows[i].alg));
    }
    T_EQ_I64(jwt_verifier_new_hmac(&key, NULL, NULL, &plain), ERR_OK, "setup: plain verifier");
    if (!plain)
        exit(t_done() | 1);
    secret_release(&key);
}

static const struct jwt_verifier *verifier_for(const char *alg_name)
{
    for (size_t i = 0; i < ARRAY_SIZE(verifier_rows); i++)
        if (strcmp(jwt_alg_name(verifier_rows[i].alg), alg_name) == 0)
            return verifiers[i];
    return NULL;
}

/* ---- HS256 tokens built here: header and claim rules ---- */

#define HDR    "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define PARTY  "\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\""
#define GOOD   "{" PARTY ",\"sub\":\"user_1\",\"exp\":1800003600}"
#define CLAIMS "\"sub\":\"user_1\",\"exp\":1800003600"

static const struct {
    const char *name;
    const char *header;
    const char *payload;
    enum sig_mode sig;
    const char *want;
} hs_rows[] = {
    { "valid", HDR, GOOD, SIG_HMAC, "ok" },
    { "valid, no typ", "{\"alg\":\"HS256\"}", GOOD, SIG_HMAC, "ok" },
    { "real exp", HDR, "{" PARTY ",\"sub\":\"u\",\"exp\":1800003600.5}", SIG_HMAC, "ok" },
    { "email", HDR, "{" PARTY "," CLAIMS ",\"email\":\"a@b.example\"}", SIG_HMAC, "ok" },
    { "aud array", HDR, "{\"iss\":\"" ISSUER "\",\"aud\":[\"x\",\"subgate\"]," CLAIMS "}", SIG_HMAC,
      "ok" },
    { "expired", HDR, "{" PARTY ",\"sub\":\"u\",\"exp\":1700000000}", SIG_HMAC, "token expired" },
    { "nbf future", HDR, "{" PARTY "," CLAIMS ",\"nbf\":1800000300}", SIG_HMAC,
      "token not yet valid" },
    { "missing exp", HDR, "{" PARTY ",\"sub\":\"u\"}", SIG_HMAC, "missing exp claim" },
    { "string exp", HDR, "{" PARTY ",\"sub\":\"u\",\"exp\":\"1800003600\"}", SIG_HMAC,
      "invalid time claim" },
    { "null exp", HDR, "{" PARTY ",\"sub\":\"u\",\"exp\":null}", SIG_HMAC, "invalid time claim" },
    { "huge real exp", HDR, "{" PARTY ",\"sub\":\"u\",\"exp\":1e300}", SIG_HMAC,
      "invalid time claim" },
    { "string nbf", HDR, "{" PARTY "," CLAIMS ",\"nbf\":\"0\"}", SIG_HMAC, "invalid time claim" },
    { "huge exp", HDR, "{" PARTY ",\"sub\":\"u\",\"exp\":9223372036854775807}", SIG_HMAC, "ok" },
    { "negative exp", HDR, "{" PARTY ",\"sub\":\"u\",\"exp\":-9223372036854775807}", SIG_HMAC,
      "token expired" },
    { "wrong issuer", HDR, "{\"iss\":\"x\",\"aud\":\"subgate\"," CLAIMS "}", SIG_HMAC,
      "wrong issuer" },
    { "issuer prefix", HDR, "{\"iss\":\"https://issuer.exampl\",\"aud\":\"subgate\"," CLAIMS "}",
      SIG_HMAC, "wrong issuer" },
    { "missing issuer", HDR, "{\"aud\":\"subgate\"," CLAIMS "}", SIG_HMAC, "wrong issuer" },
    { "numeric issuer", HDR, "{\"iss\":1,\"aud\":\"subgate\"," CLAIMS "}", SIG_HMAC,
      "wrong issuer" },
    { "wrong audience string", HDR, "{\"iss\":\"" ISSUER "\",\"aud\":\"subgat\"," CLAIMS "}",
      SIG_HMAC, "wrong audience" },
    { "wrong audience array", HDR, "{\"iss\":\"" ISSUER "\",\"aud\":[\"a\",1,null]," CLAIMS "}",
      SIG_HMAC, "wrong audience" },
    { "empty audience array", HDR, "{\"iss\":\"" ISSUER "\",\"aud\":[]," CLAIMS "}", SIG_HMAC,
      "wrong audience" },
    { "nested audience", HDR, "{\"iss\":\"" ISSUER "\",\"aud\":[[\"subgate\"]]," CLAIMS "}",
      SIG_HMAC, "wrong audience" },
    { "missing audience", HDR, "{\"iss\":\"" ISSUER "\"," CLAIMS "}", SIG_HMAC, "wrong audience" },
    { "non-string sub", HDR, "{" PARTY ",\"sub\":42,\"exp\":1800003600}", SIG_HMAC,
      "invalid sub claim" },
    { "empty sub", HDR, "{" PARTY ",\"sub\":\"\",\"exp\":1800003600}", SIG_HMAC,
      "invalid sub claim" },
    { "missing sub", HDR, "{" PARTY ",\"exp\":1800003600}", SIG_HMAC, "missing sub claim" },
    { "NUL in sub", HDR, "{" PARTY ",\"sub\":\"a\\u0000b\",\"exp\":1800003600}", SIG_HMAC,
      "malformed token" },
    { "non-string email", HDR, "{" PARTY "," CLAIMS ",\"email\":true}", SIG_HMAC,
      "invalid email claim" },
    { "duplicate sub", HDR, "{" PARTY ",\"sub\":\"a\",\"sub\":\"b\",\"exp\":1800003600}", SIG_HMAC,
      "malformed token" },
    { "duplicate exp", HDR, "{" PARTY "," CLAIMS ",\"exp\":1900000000}", SIG_HMAC,
      "malformed token" },
    { "payload array", HDR, "[" GOOD "]", SIG_HMAC, "malformed token" },
    { "payload not json", HDR, "{" PARTY ",", SIG_HMAC, "malformed token" },
    { "payload trailing junk", HDR, GOOD "x", SIG_HMAC, "malformed token" },
    { "alg none, empty signature", "{\"alg\":\"none\"}", GOOD, SIG_EMPTY, "algorithm not allowed" },
    { "alg none, signature", "{\"alg\":\"none\"}", GOOD, SIG_HMAC, "algorithm not allowed" },
    { "alg none, no signature part", "{\"alg\":\"none\"}", GOOD, SIG_ABSENT, "malformed token" },
    { "alg lower case", "{\"alg\":\"hs256\"}", GOOD, SIG_HMAC, "algorithm not allowed" },
    { "alg RS256", "{\"alg\":\"RS256\"}", GOOD, SIG_HMAC, "algorithm not allowed" },
    { "alg HS512", "{\"alg\":\"HS512\"}", GOOD, SIG_HMAC, "algorithm not allowed" },
    { "alg missing", "{\"typ\":\"JWT\"}", GOOD, SIG_HMAC, "malformed token" },
    { "alg number", "{\"alg\":256}", GOOD, SIG_HMAC, "malformed token" },
    { "alg duplicate", "{\"alg\":\"HS256\",\"alg\":\"none\"}", GOOD, SIG_HMAC, "malformed token" },
    { "header array", "[\"HS256\"]", GOOD, SIG_HMAC, "malformed token" },
    { "crit header", "{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", GOOD, SIG_HMAC,
      "unsupported critical header" },
    { "empty signature", HDR, GOOD, SIG_EMPTY, "bad signature" },
    { "no signature part", HDR, GOOD, SIG_ABSENT, "malformed token" },
};

static void test_hs256_rows(void)
{
    const struct jwt_verifier *v = verifier_for("HS256");
    static char token[TOKEN_BUF];

    for (size_t i = 0; i < ARRAY_SIZE(hs_rows); i++) {
        struct jwt_claims c;
        size_t n =
            make_token(hs_rows[i].header, hs_rows[i].payload, hs_rows[i].sig, token, sizeof(token));
        T_EQ_STR(verify_why(v, token, n, &c), hs_rows[i].want, "hs256: %s", hs_rows[i].name);
    }
}

static void test_claims_filled(void)
{
    static char token[TOKEN_BUF];
    struct jwt_claims c;
    size_t n = make_token(HDR,
                          "{" PARTY ",\"sub\":\"user_1\",\"email\":\"a@b.example\",\"exp\":"
                          "1800003600,\"nbf\":1799999000,\"iat\":1799998000}",
                          SIG_HMAC, token, sizeof(token));

    T_EQ_STR(verify_why(verifiers[0], token, n, &c), "ok", "claims: verified");
    T_EQ_STR(c.sub, "user_1", "claims: sub");
    T_EQ_STR(c.email, "a@b.example", "claims: email");
    T_EQ_I64(c.exp, 1800003600, "claims: exp");
    T_EQ_I64(c.nbf, 1799999000, "claims: nbf");
    T_EQ_I64(c.iat, 1799998000, "claims: iat");
    n = make_token(HDR, "{" PARTY ",\"sub\":\"user_1\",\"exp\":1}", SIG_HMAC, token, sizeof(token));
    T_EQ_STR(verify_why(verifiers[0], token, n, &c), "token expired", "claims: expired");
    T_EQ_STR(c.sub, "", "claims: zeroed on failure");
    n = make_token(HDR, "{\"iss\":\"x\",\"aud\":5,\"sub\":\"u\",\"exp\":1800003600}", SIG_HMAC,
                   token, sizeof(token));
    T_EQ_STR(verify_why(plain, token, n, &c), "ok", "claims: iss and aud unchecked when unset");
}

/* ---- leeway boundaries ---- */

static const struct {
    int64_t leeway_s;
    int64_t exp;
    int64_t nbf; /* 0: absent */
    const char *want;
} leeway_rows[] = {
    { 60, NOW - 59, 0, "ok" },
    { 60, NOW - 60, 0, "token expired" },
    { 0, NOW + 1, 0, "ok" },
    { 0, NOW, 0, "token expired" },
    { 60, NOW + 10, NOW + 60, "ok" },
    { 60, NOW + 100, NOW + 61, "token not yet valid" },
    { 0, NOW + 10, NOW, "ok" },
    { 0, NOW + 10, NOW + 1, "token not yet valid" },
    { -5, NOW, 0, "token expired" },     /* negative leeway counts as none */
    { INT64_MAX, NOW - 86399, 0, "ok" }, /* clamped to a day */
    { INT64_MAX, NOW - 86400, 0, "token expired" },
};

static void test_leeway(void)
{
    struct secret key = { 0 };
    struct jwt_verifier *v = NULL;
    static char token[TOKEN_BUF];
    char payload[256];

    secret_set(&key, HS_SECRET, strlen(HS_SECRET));
    T_EQ_I64(jwt_verifier_new_hmac(&key, NULL, NULL, &v), ERR_OK, "leeway: verifier");
    for (size_t i = 0; v && i < ARRAY_SIZE(leeway_rows); i++) {
        struct jwt_claims c;
        int nbf = leeway_rows[i].nbf != 0;
        snprintf(payload, sizeof(payload), "{\"sub\":\"u\",\"exp\":%lld%s%lld}",
                 (long long)leeway_rows[i].exp,
                 nbf ? ",\"nbf\":" : ",\"iat\":", (long long)(nbf ? leeway_rows[i].nbf : NOW));
        jwt_verifier_set_leeway(v, leeway_rows[i].leeway_s);
        size_t n = make_token(HDR, payload, SIG_HMAC, token, sizeof(token));
        T_EQ_STR(verify_why(v, token, n, &c), leeway_rows[i].want, "leeway %zu: %s", i, payload);
    }
    jwt_verifier_free(v);
    secret_release(&key);
}

/* ---- sizes of sub, email and the whole token ---- */

static const struct {
    const char *claim;
    size_t len;
    const char *want;
} size_rows[] = {
    { "sub", 1, "ok" },
    { "sub", USER_ID_MAX - 1, "ok" },
    { "sub", USER_ID_MAX, "invalid sub claim" },
    { "sub", 4000, "invalid sub claim" },
    { "email", 0, "ok" },
    { "email", EMAIL_MAX - 1, "ok" },
    { "email", EMAIL_MAX, "invalid email claim" },
};

static void test_claim_sizes(void)
{
    static char token[TOKEN_BUF], payload[TOKEN_BUF], value[4200];

    for (size_t i = 0; i < ARRAY_SIZE(size_rows); i++) {
        struct jwt_claims c;
        bool is_sub = strcmp(size_rows[i].claim, "sub") == 0;
        memset(value, 'a', size_rows[i].len);
        value[size_rows[i].len] = '\0';
        snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"email\":\"%s\",\"exp\":1800003600}",
                 is_sub ? value : "u", is_sub ? "" : value);
        size_t n = make_token(HDR, payload, SIG_HMAC, token, sizeof(token));
        T_EQ_STR(verify_why(plain, token, n, &c), size_rows[i].want, "size: %s of %zu bytes",
                 size_rows[i].claim, size_rows[i].len);
        if (strcmp(size_rows[i].want, "ok") == 0)
            T_EQ_I64(strlen(is_sub ? c.sub : c.email), size_rows[i].len, "size: %s copied",
                     size_rows[i].claim);
    }
}

/* Builds a valid token whose payload carries filler bytes of padding; returns its length. */
static size_t filler_token(size_t filler, char *token, size_t cap)
{
    static char payload[TOKEN_BUF];
    size_t head =
        (size_t)snprintf(payload, sizeof(payload), "{\"sub\":\"u\",\"exp\":1800003600,\"x\":\"");

    memset(payload + head, 'x', filler);
    memcpy(payload + head + filler, "\"}", 3);
    return make_token(HDR, payload, SIG_HMAC, token, cap);
}

/* The largest token that fits must verify; one more filler byte must be refused unread. */
static void test_token_size(void)
{
    static char token[TOKEN_BUF];
    struct jwt_claims c;
    size_t filler = 5000, n;

    while (filler_token(filler + 1, token, sizeof(token)) <= JWT_TOKEN_MAX)
        filler++;
    n = filler_token(filler, token, sizeof(token));
    T_OK(n > JWT_TOKEN_MAX - 4 && n <= JWT_TOKEN_MAX, "size: largest token is %zu bytes", n);
    T_EQ_STR(verify_why(plain, token, n, &c), "ok", "size: token of %zu bytes", n);
    n = filler_token(filler + 1, token, sizeof(token));
    T_EQ_STR(verify_why(plain, token, n, &c), "token too long", "size: token of %zu bytes", n);
    T_EQ_STR(verify_why(plain, token, SIZE_MAX, &c), "token too long", "size: SIZE_MAX");
}

/* ---- fixtures signed by Node ---- */

struct fixture {
    char *line; /* owns the bytes the fields point into */
    const char *name;
    const char *alg;
    const char *want;
    const char *token;
};

static struct fixture fixtures[64];
static size_t fixture_count;

/* Splits a line at tabs into exactly four fields, in place. */
static bool fixture_split(char *line, struct fixture *f)
{
    char *field[4];
    size_t n = 0;

    field[n++] = line;
    for (char *p = line; *p && n < 4; p++)
        if (*p == '\t') {
            *p = '\0';
            field[n++] = p + 1;
        }
    if (n != 4 || strchr(field[3], '\t'))
        return false;
    field[3][strcspn(field[3], "\r\n")] = '\0';
    f->line = line;
    f->name = field[0];
    f->alg = field[1];
    f->want = field[2];
    f->token = field[3];
    return true;
}

static void load_fixtures(void)
{
    FILE *f = fopen(TOKENS, "r");
    char *line = NULL;
    size_t cap = 0;

    T_OK(f != NULL, "fixtures: open " TOKENS " (run from the repo root)");
    while (f && fixture_count < ARRAY_SIZE(fixtures) && getline(&line, &cap, f) > 0) {
        bool ok = fixture_split(line, &fixtures[fixture_count]);
        T_OK(ok, "fixtures: line %zu has four fields", fixture_count + 1);
        if (!ok)
            continue;
        fixture_count++;
        line = NULL;
        cap = 0;
    }
    free(line);
    if (f)
        fclose(f);
}

static const struct fixture *fixture_named(const char *name)
{
    for (size_t i = 0; i < fixture_count; i++)
        if (strcmp(fixtures[i].name, name) == 0)
            return &fixtures[i];
    return NULL;
}

static void test_fixtures(void)
{
    T_OK(fixture_count >= 27, "fixtures: %zu tokens", fixture_count);
    for (size_t i = 0; i < fixture_count; i++) {
        const struct fixture *fx = &fixtures[i];
        const struct jwt_verifier *v = verifier_for(fx->alg);
        struct jwt_claims c;
        T_OK(v != NULL, "fixture %s: verifier %s", fx->name, fx->alg);
        if (!v)
            continue;
        T_EQ_STR(verify_why(v, fx->token, strlen(fx->token), &c), fx->want, "fixture %s", fx->name);
        if (strcmp(fx->want, "ok") == 0)
            T_EQ_STR(c.sub, "user_42", "fixture %s: sub", fx->name);
    }
}

/* ---- structure and encoding: mutations of valid tokens ---- */

enum mutation {
    M_NONE,
    M_PAYLOAD_CHAR,  /* one payload character changed, still base64url */
    M_SIG_CHAR,      /* the first signature character changed */
    M_SIG_TAIL,      /* the last whole signature byte changed */
    M_SIG_DROP4,     /* the first 4 signature characters removed: 3 bytes short */
    M_SIG_STRAY_BIT, /* a padding bit set in the last signature character */
    M_SIG_PAD,       /* "=" appended */
    M_PAYLOAD_PAD,   /* "=" after the payload */
    M_SIG_STD_B64,   /* a '+' (standard base64) in the signature */
    M_PAYLOAD_SLASH, /* a '/' in the payload */
    M_HEADER_SPACE,  /* a space inside the header */
    M_PAYLOAD_NUL,   /* a NUL byte inside the payload */
    M_FOURTH_PART,   /* ".AAAA" appended */
    M_NO_SIG_PART,   /* ".sig" removed */
    M_NO_HEADER,     /* header removed, ".payload.sig" */
    M_NO_PAYLOAD,    /* "header..sig" */
    M_BEARER_PREFIX, /* "Bearer " left in front */
    M_NEWLINE,       /* "\n" appended */
    M_DOTS_ONLY,     /* ".." */
    M_EMPTY,         /* "" */
};

static const struct {
    enum mutation m;
    const char *name;
    const char *want;
} mutation_rows[] = {
    { M_NONE, "unchanged", "ok" },
    { M_PAYLOAD_CHAR, "tampered payload", "bad signature" },
    { M_SIG_CHAR, "tampered signature", "bad signature" },
    { M_SIG_TAIL, "tampered signature tail", "bad signature" },
    { M_SIG_DROP4, "short signature", "bad signature" },
    { M_SIG_STRAY_BIT, "non-canonical signature", "malformed token" },
    { M_SIG_PAD, "padded signature", "malformed token" },
    { M_PAYLOAD_PAD, "padded payload", "malformed token" },
    { M_SIG_STD_B64, "'+' in signature", "malformed token" },
    { M_PAYLOAD_SLASH, "'/' in payload", "malformed token" },
    { M_HEADER_SPACE, "space in header", "malformed token" },
    { M_PAYLOAD_NUL, "NUL in payload", "malformed token" },
    { M_FOURTH_PART, "four parts", "malformed token" },
    { M_NO_SIG_PART, "two parts", "malformed token" },
    { M_NO_HEADER, "empty header", "malformed token" },
    { M_NO_PAYLOAD, "empty payload", "malformed token" },
    { M_BEARER_PREFIX, "Bearer prefix", "malformed token" },
    { M_NEWLINE, "trailing newline", "malformed token" },
    { M_DOTS_ONLY, "dots only", "malformed token" },
    { M_EMPTY, "empty", "malformed token" },
};

static char b64url_flip_low_bit(char c)
{
    const char *p = strchr(b64url_alphabet, c);

    if (!p)
        return c;
    return b64url_alphabet[(size_t)(p - b64url_alphabet) ^ 1];
}

/* Splices <a>, <b, bn> and <c> into out; returns the length. */
static size_t splice(char *out, size_t cap, const char *a, size_t an, const char *b, size_t bn,
                     const char *c)
{
    size_t cn = strlen(c);

    if (an + bn + cn >= cap)
        return 0;
    memmove(out, a, an);
    memcpy(out + an, b, bn);
    memcpy(out + an + bn, c, cn + 1);
    return an + bn + cn;
}

/* Applies m to the valid token in; out must not overlap it. */
static size_t mutate(const char *in, enum mutation m, char *out, size_t cap)
{
    size_t len = strlen(in);
    size_t d1 = (size_t)(strchr(in, '.') - in), d2 = (size_t)(strrchr(in, '.') - in);
    size_t mid = d1 + (d2 - d1) / 2;

    memcpy(out, in, len + 1);
    switch (m) {
    case M_NONE:
        return len;
    case M_PAYLOAD_CHAR:
        out[mid] = out[mid] == 'A' ? 'B' : 'A';
        return len;
    case M_SIG_CHAR:
        out[d2 + 1] = out[d2 + 1] == 'A' ? 'B' : 'A';
        return len;
    case M_SIG_TAIL:
        out[len - 2] = out[len - 2] == 'A' ? 'B' : 'A';
        return len;
    case M_SIG_DROP4:
        return splice(out, cap, in, d2 + 1, "", 0, in + d2 + 5);
    case M_SIG_STRAY_BIT:
        out[len - 1] = b64url_flip_low_bit(out[len - 1]);
        return len;
    case M_SIG_PAD:
        return splice(out, cap, in, len, "=", 1, "");
    case M_PAYLOAD_PAD:
        return splice(out, cap, in, d2, "=", 1, in + d2);
    case M_SIG_STD_B64:
        out[d2 + 1] = '+';
        return len;
    case M_PAYLOAD_SLASH:
        out[mid] = '/';
        return len;
    case M_HEADER_SPACE:
        return splice(out, cap, in, 2, " ", 1, in + 2);
    case M_PAYLOAD_NUL:
        out[mid] = '\0';
        return len;
    case M_FOURTH_PART:
        return splice(out, cap, in, len, ".AAAA", 5, "");
    case M_NO_SIG_PART:
        out[d2] = '\0';
        return d2;
    case M_NO_HEADER:
        return splice(out, cap, "", 0, in + d1, len - d1, "");
    case M_NO_PAYLOAD:
        return splice(out, cap, in, d1 + 1, "", 0, in + d2);
    case M_BEARER_PREFIX:
        return splice(out, cap, "Bearer ", 7, in, len, "");
    case M_NEWLINE:
        return splice(out, cap, in, len, "\n", 1, "");
    case M_DOTS_ONLY:
        return splice(out, cap, "..", 2, "", 0, "");
    case M_EMPTY:
        out[0] = '\0';
        return 0;
    }
    return len;
}

/* Applies every mutation to one valid token of verifier t. */
static void test_mutations_of(size_t t, const char *token)
{
    static char out[TOKEN_BUF];

    for (size_t i = 0; i < ARRAY_SIZE(mutation_rows); i++) {
        struct jwt_claims c;
        size_t n = mutate(token, mutation_rows[i].m, out, sizeof(out));
        T_EQ_STR(verify_why(verifiers[t], out, n, &c), mutation_rows[i].want, "%s: %s",
                 jwt_alg_name(verifier_rows[t].alg), mutation_rows[i].name);
    }
}

static void test_mutations(void)
{
    static char hs[TOKEN_BUF];
    const struct fixture *rs = fixture_named("rs256_ok"), *es = fixture_named("es256_ok");
    const char *tokens[] = { hs, rs ? rs->token : NULL, es ? es->token : NULL };

    (void)make_token(HDR, GOOD, SIG_HMAC, hs, sizeof(hs));
    for (size_t t = 0; t < ARRAY_SIZE(tokens); t++) {
        T_OK(tokens[t] != NULL, "mutation: base token %zu", t);
        if (tokens[t])
            test_mutations_of(t, tokens[t]);
    }
}

/* ---- configuration ---- */

static const struct {
    const char *path;
    enum err want;
    enum jwt_alg alg;    /* when ERR_OK */
    const char *errtext; /* substring of the message otherwise */
} pem_rows[] = {
    { FIXTURES "rsa_public.pem", ERR_OK, JWT_RS256, NULL },
    { FIXTURES "ec_public.pem", ERR_OK, JWT_ES256, NULL },
    { FIXTURES "ec_p384_public.pem", ERR_INVALID, 0, "unsupported key type" },
    { FIXTURES "ed25519_public.pem", ERR_INVALID, 0, "unsupported key type" },
    { FIXTURES "rsa1024_public.pem", ERR_INVALID, 0, "1024 bits is too short" },
    { FIXTURES "rsa_pkcs1_public.pem", ERR_OK, JWT_RS256, NULL }, /* OpenSSL 3 reads PKCS #1 */
    { FIXTURES "tokens.tsv", ERR_INVALID, 0, "no PEM 'PUBLIC KEY'" },
    { FIXTURES "make_tokens.js", ERR_INVALID, 0, "no PEM 'PUBLIC KEY'" },
    { FIXTURES, ERR_INVALID, 0, "cannot read" },
    { FIXTURES "missing.pem", ERR_INVALID, 0, "cannot read" },
};

static void test_pem_config(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(pem_rows); i++) {
        struct jwt_verifier *v = (struct jwt_verifier *)&v; /* must become NULL on error */
        char errbuf[512] = "";
        enum err err =
            jwt_verifier_new_pem(pem_rows[i].path, NULL, NULL, &v, errbuf, sizeof(errbuf));
        T_EQ_I64(err, pem_rows[i].want, "pem %s: result (%.300s)", pem_rows[i].path, errbuf);
        if (err == ERR_OK && v)
            T_EQ_I64(jwt_verifier_alg(v), pem_rows[i].alg, "pem %s: alg", pem_rows[i].path);
        if (err != ERR_OK) {
            T_OK(v == NULL, "pem %s: no verifier", pem_rows[i].path);
            T_OK(strstr(errbuf, pem_rows[i].path) && strstr(errbuf, pem_rows[i].errtext),
                 "pem %s: message '%.300s'", pem_rows[i].path, errbuf);
            v = NULL;
        }
        jwt_verifier_free(v);
    }
}

static const struct {
    size_t len; /* 0: unset */
    enum err want;
} hmac_rows[] = {
    { 0, ERR_INVALID },           { 1, ERR_INVALID }, { JWT_HMAC_KEY_MIN - 1, ERR_INVALID },
    { JWT_HMAC_KEY_MIN, ERR_OK }, { 200, ERR_OK },
};

static void test_hmac_config(void)
{
    static const char bytes[256] = "k";

    for (size_t i = 0; i < ARRAY_SIZE(hmac_rows); i++) {
        struct secret key = { 0 };
        struct jwt_verifier *v = NULL;
        if (hmac_rows[i].len)
            secret_set(&key, bytes, hmac_rows[i].len);
        T_EQ_I64(jwt_verifier_new_hmac(&key, NULL, NULL, &v), hmac_rows[i].want,
                 "hmac key of %zu bytes", hmac_rows[i].len);
        T_OK((v != NULL) == (hmac_rows[i].want == ERR_OK), "hmac key of %zu bytes: verifier",
             hmac_rows[i].len);
        jwt_verifier_free(v);
        secret_release(&key);
    }
    jwt_verifier_free(NULL);
}

static const struct {
    enum jwt_alg alg;
    const char *want;
} alg_rows[] = {
    { JWT_HS256, "HS256" },
    { JWT_RS256, "RS256" },
    { JWT_ES256, "ES256" },
    { (enum jwt_alg)7, "unknown" },
};

static void test_alg_names(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(alg_rows); i++)
        T_EQ_STR(jwt_alg_name(alg_rows[i].alg), alg_rows[i].want, "alg name %d",
                 (int)alg_rows[i].alg);
}

/* ---- concurrency: one verifier per algorithm shared by several threads ---- */

#define THREADS    4
#define ITERATIONS 200

static void *verify_loop(void *arg)
{
    static const char *const names[] = { "hs256_ok", "rs256_ok", "es256_ok" };
    size_t *failures = arg;

    for (size_t i = 0; i < ITERATIONS; i++) {
        const struct fixture *fx = fixture_named(names[i % ARRAY_SIZE(names)]);
        struct jwt_claims c;
        if (!fx ||
            strcmp(verify_why(verifiers[i % ARRAY_SIZE(names)], fx->token, strlen(fx->token), &c),
                   "ok") != 0)
            (*failures)++;
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t tid[THREADS];
    size_t failures[THREADS] = { 0 };
    size_t total = 0;

    for (size_t i = 0; i < THREADS; i++)
        T_EQ_I64(pthread_create(&tid[i], NULL, verify_loop, &failures[i]), 0, "thread %zu", i);
    for (size_t i = 0; i < THREADS; i++) {
        pthread_join(tid[i], NULL);
        total += failures[i];
    }
    T_EQ_I64(total, 0, "threads: %d x %d verifications", THREADS, ITERATIONS);
}

/* ---- the shared cache: 1,000 users' tokens verified on one thread hit on another ---- */

#define USERS 1000

struct cache_run {
    char (*tokens)[512];
    size_t *lens;
    size_t ok;
    uint64_t hits;
};

static void *verify_users(void *arg)
{
    struct cache_run *run = arg;
    uint64_t before = jwt_cache_hits();

    for (size_t i = 0; i < USERS; i++) {
        struct jwt_claims c;
        char want[32];
        snprintf(want, sizeof(want), "user_%zu", i);
        if (strcmp(verify_why(plain, run->tokens[i], run->lens[i], &c), "ok") == 0 &&
            strcmp(c.sub, want) == 0)
            run->ok++;
    }
    run->hits = jwt_cache_hits() - before;
    return NULL;
}

static void test_shared_cache(void)
{
    static char tokens[USERS][512];
    static size_t lens[USERS];
    struct cache_run first = { tokens, lens, 0, 0 }, second = { tokens, lens, 0, 0 };
    pthread_t t;
    char expired[512];
    size_t n;
    struct jwt_claims c;

    for (size_t i = 0; i < USERS; i++) {
        char payload[128];
        snprintf(payload, sizeof(payload), "{\"sub\":\"user_%zu\",\"exp\":%lld}", i,
                 (long long)NOW + 3600);
        lens[i] =
            make_token("{\"alg\":\"HS256\"}", payload, SIG_HMAC, tokens[i], sizeof(tokens[i]));
    }
    pthread_create(&t, NULL, verify_users, &first);
    pthread_join(t, NULL);
    pthread_create(&t, NULL, verify_users, &second);
    pthread_join(t, NULL);
    T_EQ_I64(first.ok, USERS, "first thread: every token verified, its own sub");
    T_EQ_I64(second.ok, USERS, "second thread: every token verified, its own sub");
    T_OK(second.hits >= USERS * 90 / 100,
         "second thread: %llu of %d answered by the cache the first one filled",
         (unsigned long long)second.hits, USERS);
    /* a hit still checks the time: a token cached while valid is refused once expired */
    n = make_token("{\"alg\":\"HS256\"}", "{\"sub\":\"late\",\"exp\":1800000010}", SIG_HMAC,
                   expired, sizeof(expired));
    T_EQ_STR(verify_why(plain, expired, n, &c), "ok", "valid now");
    {
        const char *why = NULL;
        T_OK(jwt_verify(plain, expired, n, NOW + 3600, &c, &why) == ERR_UNAUTHORIZED,
             "expired later, though cached");
    }
}

int main(void)
{
    setup_verifiers();
    load_fixtures();
    test_hs256_rows();
    test_claims_filled();
    test_leeway();
    test_claim_sizes();
    test_token_size();
    test_fixtures();
    test_mutations();
    test_pem_config();
    test_hmac_config();
    test_alg_names();
    test_threads();
    test_shared_cache();
    for (size_t i = 0; i < ARRAY_SIZE(verifiers); i++)
        jwt_verifier_free(verifiers[i]);
    jwt_verifier_free(plain);
    for (size_t i = 0; i < fixture_count; i++)
        free(fixtures[i].line);
    return t_done();
}
