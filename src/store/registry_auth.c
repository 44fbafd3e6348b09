/* The registry's bearer-token handshake, as Docker/OCI distribution and
 * Ollama's registry speak it: a request answered 401 carries
 *   WWW-Authenticate: Bearer realm="https://auth.example/token",service="x",scope="repository:ns/m:pull"
 * and the client GETs the realm with the service and scope as query
 * parameters, reads {"token": ...} (or "access_token") and retries with
 * "Authorization: Bearer <token>". This file owns the header parser (outside
 * input: RFC 7235 auth-params, quoted strings with escapes and commas inside
 * quotes, any order, size-limited; malformed headers are refused with the
 * reason), the token request, and the Authorization header line. Where the
 * token may be sent is pull.c's business: only to the registry, never after
 * a redirect to another host (libcurl drops custom Authorization headers on
 * a cross-origin redirect unless CURLOPT_UNRESTRICTED_AUTH is set, which we
 * never do). */
#include "store/registry.h"
#include "store/store_internal.h"

#include "base/buf.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AUTH_TOKEN_MAX 16384          /* a JWT of a few KB is usual */
#define AUTH_RESPONSE_MAX (256 << 10) /* the token endpoint's JSON */

static int is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_ows(unsigned char c) { return c == ' ' || c == '\t'; }

/* Copies a value into dst (cap bytes); quoted-string escapes already
 * resolved by the caller. */
static int put_value(char *dst, size_t cap, const char *name, const char *v, size_t n, hl_err *err) {
    if (dst[0]) return hl_err_set(err, HL_EINVAL, "WWW-Authenticate: parameter %s given twice", name);
    if (n == 0) return hl_err_set(err, HL_EINVAL, "WWW-Authenticate: parameter %s is empty", name);
    if (n >= cap) return hl_err_set(err, HL_EINVAL, "WWW-Authenticate: parameter %s is too long (%zu bytes)", name, n);
    memcpy(dst, v, n);
    dst[n] = 0;
    return HL_OK;
}

int store_www_auth_parse(const char *h, size_t len, store_auth_challenge *out, hl_err *err) {
    memset(out, 0, sizeof *out);
    if (len > STORE_AUTH_HEADER_MAX)
        return hl_err_set(err, HL_EINVAL, "WWW-Authenticate header is too long (%zu bytes)", len);
    size_t i = 0;
    while (i < len && is_ows((unsigned char)h[i])) i++;
    size_t s0 = i;
    while (i < len && is_tchar((unsigned char)h[i])) i++;
    if (i == s0) return hl_err_set(err, HL_EINVAL, "WWW-Authenticate header names no authentication scheme");
    if (i - s0 != 6 || strncasecmp(h + s0, "Bearer", 6) != 0)
        return hl_err_set(err, HL_EINVAL, "registry asks for '%.*s' authentication; only Bearer tokens are supported",
                          (int)(i - s0 > 32 ? 32 : i - s0), h + s0);
    if (i < len && !is_ows((unsigned char)h[i]))
        return hl_err_set(err, HL_EINVAL, "WWW-Authenticate: unexpected character after the scheme (offset %zu)", i);
    char *value = malloc(len + 1); /* an unescaped value is never longer than the header */
    if (!value) return hl_err_set(err, HL_ENOMEM, "out of memory");
    int rc = HL_OK;
    for (;;) {
        while (i < len && (is_ows((unsigned char)h[i]) || h[i] == ',')) i++; /* empty list elements are allowed */
        if (i >= len) break;
        size_t n0 = i;
        while (i < len && is_tchar((unsigned char)h[i])) i++;
        size_t nlen = i - n0;
        if (nlen == 0) {
            rc = hl_err_set(err, HL_EINVAL, "WWW-Authenticate: expected a parameter name at offset %zu", i);
            break;
        }
        size_t after = i;
        while (i < len && is_ows((unsigned char)h[i])) i++;
        if (i >= len || h[i] != '=') {
            if (i > after && i < len && is_tchar((unsigned char)h[i])) break; /* ", Basic realm=..": the next challenge */
            rc = hl_err_set(err, HL_EINVAL, "WWW-Authenticate: parameter '%.*s' has no value", (int)(nlen > 32 ? 32 : nlen),
                            h + n0);
            break;
        }
        i++;
        while (i < len && is_ows((unsigned char)h[i])) i++;
        size_t vlen = 0;
        if (i < len && h[i] == '"') {
            i++;
            int closed = 0;
            while (i < len) {
                unsigned char c = (unsigned char)h[i++];
                if (c == '"') { closed = 1; break; }
                if (c == '\\') {
                    if (i >= len) break;
                    c = (unsigned char)h[i++];
                }
                if ((c < 0x20 && c != '\t') || c == 0x7f) {
                    closed = -1;
                    break;
                }
                value[vlen++] = (char)c;
            }
            if (closed <= 0) {
                rc = hl_err_set(err, HL_EINVAL, closed < 0 ? "WWW-Authenticate: control character in a quoted value"
                                                           : "WWW-Authenticate: unterminated quoted value");
                break;
            }
        } else {
            while (i < len && is_tchar((unsigned char)h[i])) value[vlen++] = h[i++];
            if (vlen == 0) {
                rc = hl_err_set(err, HL_EINVAL, "WWW-Authenticate: parameter '%.*s' has no value",
                                (int)(nlen > 32 ? 32 : nlen), h + n0);
                break;
            }
        }
        if (nlen == 5 && !strncasecmp(h + n0, "realm", 5)) rc = put_value(out->realm, sizeof out->realm, "realm", value, vlen, err);
        else if (nlen == 7 && !strncasecmp(h + n0, "service", 7))
            rc = put_value(out->service, sizeof out->service, "service", value, vlen, err);
        else if (nlen == 5 && !strncasecmp(h + n0, "scope", 5))
            rc = put_value(out->scope, sizeof out->scope, "scope", value, vlen, err);
        if (rc) break;
        while (i < len && is_ows((unsigned char)h[i])) i++;
        if (i < len && h[i] != ',') {
            rc = hl_err_set(err, HL_EINVAL, "WWW-Authenticate: expected ',' at offset %zu", i);
            break;
        }
    }
    free(value);
    if (rc == HL_OK && !out->realm[0]) rc = hl_err_set(err, HL_EINVAL, "WWW-Authenticate: Bearer challenge without a realm");
    if (rc) memset(out, 0, sizeof *out);
    return rc;
}

static size_t body_write(char *p, size_t sz, size_t n, void *ud) {
    hl_buf *b = ud;
    if (b->len + sz * n > AUTH_RESPONSE_MAX) return 0;
    hl_buf_append(b, p, sz * n);
    return b->oom ? 0 : sz * n;
}

/* Appends "&name=<escaped value>" (or "?..." first) to url. */
static int add_query(CURL *c, hl_buf *url, int *first, const char *name, const char *v) {
    if (!v || !*v) return 0;
    char *e = curl_easy_escape(c, v, 0);
    if (!e) return -1;
    hl_buf_printf(url, "%c%s=%s", *first ? (strchr(url->data, '?') ? '&' : '?') : '&', name, e);
    *first = 0;
    curl_free(e);
    return url->oom ? -1 : 0;
}

int store_auth_token(const store_auth_challenge *ch, const char *registry, const char *default_scope,
                     const store_ops *ops, char **token, hl_err *err) {
    *token = NULL;
    const char *realm = ch->realm;
    int https = !strncasecmp(realm, "https://", 8), http = !strncasecmp(realm, "http://", 7);
    if (!https && !http)
        return hl_err_set(err, HL_EINVAL, "registry %s: token realm must be an http(s) URL (got '%.200s')", registry, realm);
    if (http && !store_is_loopback(realm + 7) && !(ops && ops->insecure))
        return hl_err_set(err, HL_EINVAL, "registry %s: refusing to fetch a token over plain http from %.200s", registry, realm);
    CURL *c = curl_easy_init();
    if (!c) return hl_err_set(err, HL_ENOMEM, "cannot start a transfer");
    hl_buf url = {0}, body = {0};
    hl_buf_puts(&url, realm);
    int first = 1, rc = HL_OK;
    if (url.oom || add_query(c, &url, &first, "service", ch->service) ||
        add_query(c, &url, &first, "scope", ch->scope[0] ? ch->scope : default_scope)) {
        rc = hl_err_set(err, HL_ENOMEM, "out of memory");
        goto done;
    }
    store_curl_setup(c, url.data);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    CURLcode cr = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (cr != CURLE_OK) {
        rc = hl_err_set(err, HL_EIO, "registry %s: cannot get a token from %.200s: %s", registry, realm, curl_easy_strerror(cr));
        goto done;
    }
    if (status != 200) {
        rc = hl_err_set(err, status == 401 || status == 403 ? HL_EINVAL : HL_EIO,
                        "registry %s: token endpoint %.200s answered HTTP %ld", registry, realm, status);
        goto done;
    }
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = tok ? json_tokener_parse_ex(tok, body.data ? body.data : "", (int)body.len) : NULL;
    if (tok) json_tokener_free(tok);
    const char *t = NULL;
    struct json_object *v;
    if (o && json_object_is_type(o, json_type_object)) {
        if (json_object_object_get_ex(o, "token", &v) && json_object_is_type(v, json_type_string) &&
            json_object_get_string_len(v) > 0)
            t = json_object_get_string(v);
        else if (json_object_object_get_ex(o, "access_token", &v) && json_object_is_type(v, json_type_string))
            t = json_object_get_string(v);
    }
    size_t tl = t ? strlen(t) : 0;
    int ok = tl > 0 && tl <= AUTH_TOKEN_MAX;
    for (size_t k = 0; ok && k < tl; k++) ok = t[k] > 0x20 && t[k] < 0x7f; /* it goes into a header line */
    if (!ok) rc = hl_err_set(err, HL_EIO, "registry %s: token endpoint %.200s did not return a usable token", registry, realm);
    else if (!(*token = strdup(t))) rc = hl_err_set(err, HL_ENOMEM, "out of memory");
    if (o) json_object_put(o);
done:
    hl_buf_free(&url);
    hl_buf_free(&body);
    curl_easy_cleanup(c);
    return rc;
}

int store_auth_challenge_of(CURL *c, store_auth_challenge *out, const char *registry, hl_err *err) {
    struct curl_header *h = NULL;
    /* request -1: the last response of the transfer (after any redirect) */
    if (curl_easy_header(c, "WWW-Authenticate", 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h || !h->value)
        return hl_err_set(err, HL_EINVAL, "registry %s answered 401 (unauthorized) without saying how to authenticate",
                          registry);
    int rc = store_www_auth_parse(h->value, strlen(h->value), out, err);
    if (rc) hl_err_prefix(err, "registry %s: ", registry);
    return rc;
}

struct curl_slist *store_auth_header(const char *token) {
    hl_buf b = {0};
    hl_buf_printf(&b, "Authorization: Bearer %s", token);
    struct curl_slist *l = b.oom ? NULL : curl_slist_append(NULL, b.data);
    hl_buf_free(&b);
    return l;
}
