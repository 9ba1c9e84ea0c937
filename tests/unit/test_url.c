/* test_url.c: origin extraction and the redirect allow-list. */
#include "base/url.h"
#include "t.h"

static const struct {
    const char *url;
    const char *want; /* NULL: rejected */
} origins[] = {
    { "http://localhost:3000/checkout/success", "http://localhost:3000" },
    { "HTTPS://App.Example.COM/x?y=1#z", "https://app.example.com" },
    { "https://app.example.com:443/", "https://app.example.com" },
    { "http://app.example.com:80", "http://app.example.com" },
    { "https://app.example.com:8443", "https://app.example.com:8443" },
    { "http://[::1]:3000/a", "http://[::1]:3000" },
    { "http://localhost:3000?session_id={CHECKOUT_SESSION_ID}", "http://localhost:3000" },
    { "//evil.example/path", NULL },
    { "/relative", NULL },
    { "javascript:alert(1)", NULL },
    { "ftp://example.com", NULL },
    { "http://user@evil.example", NULL },
    { "http://localhost:3000@evil.example", NULL },
    { "http://evil.example\\@localhost:3000", NULL },
    { "http://", NULL },
    { "http://:3000", NULL },
    { "http://localhost:0", NULL },
    { "http://localhost:65536", NULL },
    { "http://localhost:3000x", NULL },
    { "http://local host", NULL },
    { "http://localhost\t:3000", NULL },
    { "", NULL },
    { "http:/", NULL },
    /* One authority, one port: a second port or a colon outside brackets is malformed. */
    { "http://localhost:3000:80/", NULL },
    { "http://localhost:3000:3000/", NULL },
    { "http://localhost::3000/", NULL },
    { "http://localhost:/", NULL },
    { "http://a:b@localhost:3000/", NULL },
    { "http://localhost:3000\\@evil.example/", NULL },
    { "http://localhost%3a3000/", NULL },
    { "http://%6cocalhost:3000/", NULL },
    { "http://localhost.:3000/", NULL },
    { "http://.localhost:3000/", NULL },
    { "http://app..example.com/", NULL },
    { "http://localhost:+3000/", NULL },
    { "http://localhost:03000/", NULL },
    { "http://[::1]:3000:80/", NULL },
    { "http://[::1/", NULL },
    { "http://::1]/", NULL },
    { "http://[::1]x:3000/", NULL },
    { "http://[]/", NULL },
    { "http://[evil.example]/", NULL },
    { "http://a[::1]/", NULL },
    { "HtTp://LOCALHOST:3000/x", "http://localhost:3000" },
    { "http://[::1]/", "http://[::1]" },
    { "http://127.0.0.1:3000", "http://127.0.0.1:3000" },
};

static const char *const allowed[] = { "http://localhost:3000", "https://app.example.com" };

static const struct {
    const char *url;
    bool want;
} allow_rows[] = {
    { "http://localhost:3000/ok", true },
    { "https://APP.example.com:443/billing", true },
    { "http://localhost:3001/x", false },
    { "https://localhost:3000/x", false },
    { "https://app.example.com.evil.example/x", false },
    { "https://evil.example/https://app.example.com", false },
    { "http://localhost:3000:80/", false },
    { "http://localhost:3000:3000/", false },
    { "https://app.example.com:443:8443/", false },
    { "http://localhost.:3000/", false },
};

int main(void)
{
    char out[URL_ORIGIN_MAX];

    for (size_t i = 0; i < ARRAY_SIZE(origins); i++) {
        bool ok = url_origin(origins[i].url, out, sizeof(out));
        if (origins[i].want)
            T_EQ_STR(ok ? out : "(rejected)", origins[i].want, "origin of '%s'", origins[i].url);
        else
            T_OK(!ok, "'%s' is rejected", origins[i].url);
    }
    for (size_t i = 0; i < ARRAY_SIZE(allow_rows); i++)
        T_EQ_I64(url_origin_is_allowed(allow_rows[i].url, allowed, ARRAY_SIZE(allowed)),
                 allow_rows[i].want, "allow-list verdict for '%s'", allow_rows[i].url);
    T_OK(!url_origin("https://a.example", out, 10), "an origin longer than the buffer fails");
    return t_done();
}
