/* Registry protocol helpers shared by pull.c and registry_auth.c (internal
 * to the store; the fuzz target and unit tests reach the parser here): the
 * transfer defaults every registry request uses, which hosts may be spoken
 * to over plain http, and the bearer-token handshake (registry_auth.c). */
#ifndef HL_STORE_REGISTRY_H
#define HL_STORE_REGISTRY_H

#include "store/store.h"

#include <curl/curl.h>

/* URL, redirects (http/https only), user agent, timeouts, stall detection. */
void store_curl_setup(CURL *c, const char *url);
/* host[:port] (or a URL's text after "http://") names this machine. */
int store_is_loopback(const char *host);

/* ---- bearer tokens (registry_auth.c) ---- */
#define STORE_AUTH_HEADER_MAX 8192

/* A Bearer challenge's parameters (others, e.g. error, are ignored). */
typedef struct store_auth_challenge {
    char realm[2048];  /* the token endpoint URL; required */
    char service[512]; /* "" when absent */
    char scope[1024];  /* "" when absent */
} store_auth_challenge;

/* Parses a WWW-Authenticate value (len bytes, untrusted; need not be
 * NUL-terminated). Accepts RFC 7235 auth-params in any order, token or
 * quoted-string values (escapes, commas inside quotes), empty list elements,
 * and stops at a following challenge. Refuses a scheme other than Bearer, a
 * missing realm, repeated or empty realm/service/scope, unterminated quotes,
 * control characters, stray characters, and headers over
 * STORE_AUTH_HEADER_MAX, with the reason in err. */
int store_www_auth_parse(const char *h, size_t len, store_auth_challenge *out, hl_err *err);

/* The challenge of the last response on c (after a 401). registry names the
 * registry in error messages. */
int store_auth_challenge_of(CURL *c, store_auth_challenge *out, const char *registry, hl_err *err);

/* GETs the realm with service and scope (default_scope when the challenge
 * has none) as URL-encoded query parameters, and returns the token of the
 * JSON answer ("token", else "access_token"; printable ASCII only) in
 * *token (caller frees). The realm must be https, or http to a loopback
 * host or with ops->insecure. Errors name the registry and the endpoint. */
int store_auth_token(const store_auth_challenge *ch, const char *registry, const char *default_scope,
                     const store_ops *ops, char **token, hl_err *err);

/* "Authorization: Bearer <token>" as a one-line header list (NULL on OOM). */
struct curl_slist *store_auth_header(const char *token);

#endif
