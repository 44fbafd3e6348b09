/* The HTTP layer: the libmicrohttpd daemon (epoll, a small thread pool,
 * suspend/resume for streams), request bodies buffered under a size limit
 * (blob uploads go to a file instead), CORS like Ollama's, the optional API
 * key, routing, replies in Ollama's or OpenAI's error shape, one log line per
 * request, and graceful shutdown. */
#include "server/internal.h"
#include "base/clock.h"
#include "base/json_write.h"
#include "base/log.h"

#include <microhttpd.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int srv_status_of(int code) {
    switch (code) {
    case HL_ENOENT: return 404;
    case HL_EBUSY: return 503;
    case HL_ENOMEM: case HL_EIO: return 500;
    default: return 400;
    }
}

static void add_common_headers(srv_req *r, struct MHD_Response *resp) {
    if (r->origin_ok) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->origin);
        MHD_add_response_header(resp, "Vary", "Origin");
    }
}

int srv_reply(srv_req *r, int status, const char *ctype, const char *body, size_t n) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    if (ctype) MHD_add_response_header(resp, "Content-Type", ctype);
    add_common_headers(r, resp);
    if (status == 503) MHD_add_response_header(resp, "Retry-After", "1");
    if (status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    r->status = status;
    int rc = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

int srv_reply_json(srv_req *r, int status, hl_buf *json) {
    int rc = json->oom ? srv_reply(r, 500, "application/json", "{\"error\":\"out of memory\"}", 25)
                       : srv_reply(r, status, "application/json; charset=utf-8", json->data ? json->data : "", json->len);
    hl_buf_free(json);
    return rc;
}

int srv_reply_oai_error(srv_req *r, int status, const char *msg, const char *type, const char *param, const char *code) {
    hl_buf b = {0};
    hl_jw w;
    hl_jw_init(&w, &b);
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "error");
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "message");
    hl_jw_str(&w, msg);
    hl_jw_key(&w, "type");
    hl_jw_str(&w, type ? type : (status >= 500 ? "server_error" : "invalid_request_error"));
    hl_jw_key(&w, "param");
    if (param && *param) hl_jw_str(&w, param);
    else hl_jw_null(&w);
    hl_jw_key(&w, "code");
    if (code) hl_jw_str(&w, code);
    else hl_jw_null(&w);
    hl_jw_obj_end(&w);
    hl_jw_obj_end(&w);
    return srv_reply_json(r, status, &b);
}

int srv_reply_error(srv_req *r, int status, const char *msg) {
    hl_warn("%s %s: %d %s", r->method, r->url, status, msg);
    if (r->oai) {
        /* a missing model is answered where it is looked up (with param "model");
         * any other 404 (an unknown route) carries no code */
        const char *code = status == 401 ? "invalid_api_key" : NULL;
        const char *type = status == 401 ? "authentication_error" : status == 503 ? "server_error" : NULL;
        return srv_reply_oai_error(r, status, msg, type, NULL, code);
    }
    hl_buf b = {0};
    hl_jw w;
    hl_jw_init(&w, &b);
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "error");
    hl_jw_str(&w, msg);
    hl_jw_obj_end(&w);
    return srv_reply_json(r, status, &b);
}

/* ---- CORS and auth ---------------------------------------------------------- */

/* Ollama allows localhost origins on any port and scheme, app://, file:// and
 * tauri://, plus whatever OLLAMA_ORIGINS lists ("*" for all). */
static int origin_allowed(const srv_config *c, const char *o) {
    static const char *const LOCAL[] = {"localhost", "127.0.0.1", "0.0.0.0", "[::1]", NULL};
    static const char *const SCHEMES[] = {"app://", "file://", "tauri://", "vscode-webview://", NULL};
    for (int i = 0; i < c->n_origins; i++) {
        if (!strcmp(c->origins[i], "*") || !strcmp(c->origins[i], o)) return 1;
        size_t n = strlen(c->origins[i]); /* "http://host:*" style wildcards */
        if (n && c->origins[i][n - 1] == '*' && !strncmp(c->origins[i], o, n - 1)) return 1;
    }
    for (int i = 0; SCHEMES[i]; i++)
        if (!strncmp(o, SCHEMES[i], strlen(SCHEMES[i]))) return 1;
    const char *h = strstr(o, "://");
    if (!h) return 0;
    h += 3;
    for (int i = 0; LOCAL[i]; i++) {
        size_t n = strlen(LOCAL[i]);
        if (!strncmp(h, LOCAL[i], n) && (h[n] == 0 || h[n] == ':' || h[n] == '/')) return 1;
    }
    return 0;
}

static int ct_equal(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    unsigned char d = (unsigned char)(na != nb);
    for (size_t i = 0; i < nb; i++) d |= (unsigned char)(a[i < na ? i : 0] ^ b[i]);
    return d == 0;
}

static int auth_ok(srv_req *r) {
    const char *key = r->srv->cfg.api_key;
    if (!key) return 1;
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7)) return 0;
    return ct_equal(h + 7, key);
}

/* ---- request lifecycle ---------------------------------------------------- */

static int upload_begin(srv_req *r) {
    snprintf(r->upload_path, sizeof r->upload_path, "%s/blobs/upload-%d-%p.tmp",
             r->srv->st ? store_root(r->srv->st) : "/tmp", (int)getpid(), (void *)r);
    r->upload_fd = open(r->upload_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    return r->upload_fd >= 0;
}

static enum MHD_Result dispatch(srv_req *r) {
    const char *u = r->url;
    if (!strcmp(r->method, "OPTIONS")) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        add_common_headers(r, resp);
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS");
        MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                "Authorization, Content-Type, User-Agent, Accept, X-Requested-With, X-Stainless-Lang, "
                                "X-Stainless-Package-Version, X-Stainless-OS, X-Stainless-Arch, X-Stainless-Runtime, "
                                "X-Stainless-Runtime-Version, X-Stainless-Async, X-Stainless-Retry-Count, X-Stainless-Timeout");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "43200");
        r->status = 204;
        int rc = MHD_queue_response(r->conn, 204, resp);
        MHD_destroy_response(resp);
        return (enum MHD_Result)rc;
    }
    if (!strcmp(u, "/health")) return (enum MHD_Result)srv_route_misc(r);
    if (!auth_ok(r)) return (enum MHD_Result)srv_reply_error(r, 401, "missing or invalid API key: send \"Authorization: Bearer <key>\"");
    if (r->too_big)
        return (enum MHD_Result)srv_reply_error(r, 413, "request body too large (see max_body in the configuration)");
    int rc;
    if (!strncmp(u, "/v1/", 4)) {
        rc = srv_route_embed(r);
        if (rc == -1) rc = srv_route_openai(r);
    } else if (!strncmp(u, "/api/", 5)) {
        rc = srv_route_embed(r);
        if (rc == -1) rc = srv_route_store(r);
        if (rc == -1) rc = srv_route_ollama(r);
        if (rc == -1) rc = srv_route_tokenize(r);
    } else {
        rc = srv_route_misc(r);
        if (rc == -1) rc = srv_route_tokenize(r);
    }
    if (rc == -1) rc = srv_reply_error(r, 404, "404 page not found");
    return (enum MHD_Result)rc;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *data, size_t *size, void **con_cls) {
    srv_server *s = cls;
    srv_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->srv = s;
        r->conn = conn;
        r->t0 = hl_now_ns();
        r->upload_fd = -1;
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->url, sizeof r->url, "%s", url);
        r->oai = !strncmp(url, "/v1/", 4);
        const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
        if (origin && strlen(origin) < sizeof r->origin) {
            snprintf(r->origin, sizeof r->origin, "%s", origin);
            r->origin_ok = origin_allowed(&s->cfg, origin);
        }
        atomic_fetch_add(&s->active, 1);
        *con_cls = r;
        if (origin && !r->origin_ok) return (enum MHD_Result)srv_reply_error(r, 403, "origin not allowed");
        if (!strcmp(method, "POST") && !strncmp(url, "/api/blobs/", 11) && auth_ok(r) && !upload_begin(r))
            return (enum MHD_Result)srv_reply_error(r, 500, "cannot create a temporary file for the upload");
        return MHD_YES;
    }
    if (r->status) { /* already answered (e.g. origin refused): swallow the body */
        *size = 0;
        return MHD_YES;
    }
    if (*size) {
        if (r->upload_fd >= 0) {
            r->upload_len += (int64_t)*size;
            if (r->upload_len > s->cfg.max_upload_bytes) r->too_big = 1;
            else {
                const char *p = data;
                size_t left = *size;
                while (left) {
                    ssize_t w = write(r->upload_fd, p, left);
                    if (w < 0 && errno == EINTR) continue;
                    if (w <= 0) {
                        r->too_big = 2;
                        break;
                    }
                    p += w;
                    left -= (size_t)w;
                }
            }
        } else if (!r->too_big) {
            if ((int64_t)(r->body.len + *size) > s->cfg.max_body_bytes) {
                r->too_big = 1;
                hl_buf_free(&r->body);
            } else {
                hl_buf_append(&r->body, data, *size);
            }
        }
        *size = 0;
        return MHD_YES;
    }
    if (r->body.oom) return (enum MHD_Result)srv_reply_error(r, 500, "out of memory reading the request");
    return dispatch(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    srv_server *s = cls;
    srv_req *r = *con_cls;
    if (!r) return;
    double ms = (double)(hl_now_ns() - r->t0) / 1e6;
    int status = r->status ? r->status : 499;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && status == 200) status = 499; /* client went away mid-stream */
    if (strcmp(r->url, "/metrics") && strcmp(r->url, "/health"))
        hl_info("%s %s %d %.1fms%s%s%s", r->method, r->url, status, ms, r->model[0] ? " model=" : "", r->model, r->note);
    if (r->model[0]) srv_metrics_request(&s->metrics, r->model, status);
    if (r->upload_fd >= 0) {
        close(r->upload_fd);
        unlink(r->upload_path);
    }
    hl_buf_free(&r->body);
    free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&s->active, 1);
}

/* ---- server ------------------------------------------------------------------ */

int srv_new(srv_server **out, const srv_config *c, hl_err *err) {
    *out = NULL;
    srv_server *s = calloc(1, sizeof *s);
    if (!s) return hl_err_set(err, HL_ENOMEM, "out of memory");
    s->cfg = *c; /* deep-copy the owned strings */
    for (int i = 0; i < c->n_origins; i++) s->cfg.origins[i] = strdup(c->origins[i]);
    s->cfg.api_key = c->api_key ? strdup(c->api_key) : NULL;
    s->cfg.models_dir = c->models_dir ? strdup(c->models_dir) : NULL;
    s->cfg.config_path = c->config_path ? strdup(c->config_path) : NULL;
    pthread_mutex_init(&s->lm, NULL);
    srv_caps_cache_init(&s->caps);
    srv_metrics_init(&s->metrics);
    hl_err e2;
    if (store_open(&s->st, s->cfg.models_dir, &e2)) {
        hl_warn("model store unavailable (%s): only models given as file paths can be served", e2.msg);
        s->st = NULL;
    }
    int rc = srv_models_init(&s->models, &s->cfg, s->st, err);
    if (rc) {
        srv_free(s);
        return rc;
    }
    s->started_ns = hl_now_ns();
    *out = s;
    return 0;
}

int srv_start(srv_server *s, hl_err *err) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t slen;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    const char *h = s->cfg.host;
    if (!strcmp(h, "localhost")) h = "127.0.0.1";
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)s->cfg.port);
        slen = sizeof *a4;
    } else if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)s->cfg.port);
        slen = sizeof *a6;
        flags |= MHD_USE_IPv6;
    } else {
        return hl_err_set(err, HL_EINVAL, "host \"%s\" is not an IP address (use e.g. 127.0.0.1, 0.0.0.0 or ::1)", s->cfg.host);
    }
    (void)slen;
    s->d = MHD_start_daemon(flags, (uint16_t)s->cfg.port, NULL, NULL, on_access, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->cfg.http_threads,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.request_timeout_s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_END);
    if (!s->d)
        return hl_err_set(err, HL_EIO, "cannot listen on %s:%d: %s (is another server running there?)", s->cfg.host, s->cfg.port,
                          strerror(errno ? errno : EADDRINUSE));
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->cfg.port;
    return 0;
}

int srv_port(const srv_server *s) { return s->port; }

void srv_shutdown(srv_server *s) {
    if (!s->d) return;
    atomic_store(&s->shutting_down, 1);
    int fd = (int)MHD_quiesce_daemon(s->d); /* stop accepting; the listen socket is ours now */
    if (fd >= 0) close(fd);
    int64_t deadline = hl_now_ns() + (int64_t)s->cfg.grace_s * 1000000000ll;
    while (atomic_load(&s->active) > 0 && hl_now_ns() < deadline) usleep(20000);
    if (atomic_load(&s->active) > 0) {
        hl_warn("shutdown: %d requests still running after %ds: cancelling them", atomic_load(&s->active), s->cfg.grace_s);
        pthread_mutex_lock(&s->lm);
        for (srv_stream *st = s->streams; st; st = st->next)
            if (st->cancel) st->cancel(st->ctx);
        pthread_mutex_unlock(&s->lm);
        int64_t d2 = hl_now_ns() + 5000000000ll;
        while (atomic_load(&s->active) > 0 && hl_now_ns() < d2) usleep(20000);
    }
    /* MHD must not be stopped with suspended connections: wake any left */
    pthread_mutex_lock(&s->lm);
    for (srv_stream *st = s->streams; st; st = st->next) srv_stream_wake(st);
    pthread_mutex_unlock(&s->lm);
    MHD_stop_daemon(s->d);
    s->d = NULL;
}

void srv_free(srv_server *s) {
    if (!s) return;
    if (s->d) srv_shutdown(s);
    srv_models_destroy(&s->models);
    if (s->st) store_close(s->st);
    srv_metrics_destroy(&s->metrics);
    pthread_mutex_destroy(&s->lm);
    srv_caps_cache_destroy(&s->caps);
    srv_config_free(&s->cfg);
    free(s);
}
