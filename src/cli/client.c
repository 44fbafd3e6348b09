/* The command line's HTTP client (see client.h): the server address, the
 * background start of `hyperlama serve`, JSON requests and NDJSON streams
 * over libcurl's multi interface (so a cancel flag is looked at every 100 ms
 * even while the server is silent, e.g. during a long prompt evaluation). */
#include "cli/client.h"
#include "server/server.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A streamed line longer than this is refused: the server's lines are one
 * token or one progress update, so anything near it is not our server. */
#define CLI_MAX_LINE (64u << 20)
/* A whole (non-streamed) reply: /api/show of a model with a long license. */
#define CLI_MAX_BODY (256u << 20)

const char *cli_jstr(struct json_object *o, const char *key) {
    struct json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)) return json_object_get_string(v);
    return NULL;
}

long long cli_jint(struct json_object *o, const char *key) {
    struct json_object *v;
    if (o && json_object_object_get_ex(o, key, &v)) return (long long)json_object_get_int64(v);
    return 0;
}

int cli_client_init(cli_client *c, hl_err *err) {
    memset(c, 0, sizeof *c);
    /* the server's own parser, so "host", "host:port", "[v6]:port" and
     * "http://host:port" mean the same address to both sides */
    srv_config cfg;
    srv_config_defaults(&cfg);
    const char *h = getenv("HYPERLAMA_HOST");
    int rc = (h && *h) ? srv_config_set_host(&cfg, h, err) : 0;
    if (!rc) {
        snprintf(c->host, sizeof c->host, "%s", cfg.host);
        c->port = cfg.port;
    }
    srv_config_free(&cfg);
    if (rc) return hl_err_prefix(err, "HYPERLAMA_HOST: ");
    /* a server listening on every interface is reached on loopback */
    const char *connect = c->host;
    if (!strcmp(connect, "0.0.0.0")) connect = "127.0.0.1";
    else if (!strcmp(connect, "::")) connect = "::1";
    int v6 = strchr(connect, ':') != NULL;
    snprintf(c->base, sizeof c->base, "http://%s%s%s:%d", v6 ? "[" : "", connect, v6 ? "]" : "", c->port);
    const char *key = getenv("HYPERLAMA_API_KEY");
    if (key && *key) snprintf(c->auth, sizeof c->auth, "Authorization: Bearer %s", key);
    return 0;
}

/* ---- paths of the auto-started server ---------------------------------- */

static const char *home_dir(void) {
    const char *h = getenv("HOME");
    if (h && *h) return h;
    struct passwd *pw = getpwuid(getuid());
    return pw && pw->pw_dir ? pw->pw_dir : "/tmp";
}

void cli_client_log_path(char *out, size_t cap) { snprintf(out, cap, "%s/.hyperlama/logs/server.log", home_dir()); }
void cli_client_pid_path(char *out, size_t cap) { snprintf(out, cap, "%s/.hyperlama/logs/server.pid", home_dir()); }

/* ---- one transfer --------------------------------------------------------- */

typedef struct xfer {
    hl_buf body;       /* whole reply (non-stream), or the partial line (stream) */
    int stream;
    cli_line_fn fn;
    void *ctx;
    int stopped;       /* fn asked to stop */
    int failed;        /* an {"error"} line or a bad line; message in err */
    long status;
    hl_err *err;
} xfer;

static int handle_line(xfer *x, const char *line, size_t n) {
    while (n && (line[n - 1] == '\r' || line[n - 1] == ' ')) n--;
    if (!n) return 0;
    struct json_tokener *tok = json_tokener_new();
    if (!tok) return hl_err_set(x->err, HL_ENOMEM, "out of memory"), -1;
    struct json_object *o = json_tokener_parse_ex(tok, line, (int)n);
    int ok = o && json_tokener_get_error(tok) == json_tokener_success;
    json_tokener_free(tok);
    if (!ok) {
        if (o) json_object_put(o);
        hl_err_set(x->err, HL_EIO, "the server sent a line that is not JSON: %.80s", line);
        x->failed = 1;
        return -1;
    }
    const char *e = cli_jstr(o, "error");
    if (e) {
        hl_err_set(x->err, HL_EIO, "%s", e);
        x->failed = 1;
        json_object_put(o);
        return -1;
    }
    int stop = x->fn(x->ctx, o);
    json_object_put(o);
    if (stop) x->stopped = 1;
    return stop ? -1 : 0;
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *user) {
    xfer *x = user;
    size_t n = size * nmemb;
    if (!x->stream || (x->status && (x->status < 200 || x->status >= 300))) {
        if (x->body.len + n > CLI_MAX_BODY) return 0;
        hl_buf_append(&x->body, p, n);
        return x->body.oom ? 0 : n;
    }
    /* stream: split on newlines, keep the unfinished tail */
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n') continue;
        if (x->body.len) {
            hl_buf_append(&x->body, p + start, i - start);
            int r = handle_line(x, x->body.data, x->body.len);
            hl_buf_reset(&x->body);
            if (r) return 0;
        } else if (handle_line(x, p + start, i - start)) {
            return 0;
        }
        start = i + 1;
    }
    if (x->body.len + (n - start) > CLI_MAX_LINE) {
        hl_err_set(x->err, HL_ERANGE, "the server sent a line longer than %u bytes", CLI_MAX_LINE);
        x->failed = 1;
        return 0;
    }
    hl_buf_append(&x->body, p + start, n - start);
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *user) {
    xfer *x = user;
    size_t n = size * nmemb;
    int code;
    /* the status line: streaming lines are only parsed from a 2xx reply */
    if (n > 9 && !strncmp(p, "HTTP/", 5) && sscanf(p, "HTTP/%*s %d", &code) == 1) x->status = code;
    return n;
}

/* The server's {"error": "..."} message of a failed reply, else the body. */
static void error_from_body(const xfer *x, long status, hl_err *err) {
    const char *msg = NULL;
    struct json_object *o = x->body.len ? json_tokener_parse(x->body.data) : NULL;
    if (o) msg = cli_jstr(o, "error");
    int code = status == 404 ? HL_ENOENT : (status >= 400 && status < 500) ? HL_EINVAL : HL_EIO;
    if (msg) hl_err_set(err, code, "%s", msg);
    else if (x->body.len) hl_err_set(err, code, "server replied %ld: %.200s", status, x->body.data);
    else hl_err_set(err, code, "server replied %ld", status);
    if (o) json_object_put(o);
}

/* Runs one transfer; returns 0, 1 (stopped or cancelled) or a negative code. */
static int perform(cli_client *c, const char *method, const char *path, const char *body, xfer *x, long timeout_ms) {
    CURL *h = curl_easy_init();
    CURLM *m = curl_multi_init();
    if (!h || !m) {
        if (h) curl_easy_cleanup(h);
        if (m) curl_multi_cleanup(m);
        return hl_err_set(x->err, HL_ENOMEM, "cannot initialize libcurl");
    }
    char url[1200];
    snprintf(url, sizeof url, "%s%s", c->base, path);
    struct curl_slist *hdrs = NULL;
    if (body) hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    if (c->auth[0]) hdrs = curl_slist_append(hdrs, c->auth);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "HEAD")) curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* a proxy for the local server is never wanted */
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms > 0 && timeout_ms < 5000 ? timeout_ms : 5000L);
    if (timeout_ms > 0) curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_multi_add_handle(m, h);
    int running = 1, cancelled = 0;
    while (running) {
        if (curl_multi_perform(m, &running) != CURLM_OK) break;
        if (!running) break;
        if (c->cancel && *c->cancel) {
            cancelled = 1;
            break;
        }
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    CURLcode res = CURLE_OK;
    int msgs;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m, &msgs)))
        if (msg->msg == CURLMSG_DONE) res = msg->data.result;
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (!status) status = x->status;
    curl_multi_remove_handle(m, h);
    curl_easy_cleanup(h);
    curl_multi_cleanup(m);
    curl_slist_free_all(hdrs);
    x->status = status;
    if (cancelled || x->stopped) return 1;
    if (x->failed) return x->err->code ? x->err->code : HL_EIO;
    if (res != CURLE_OK) {
        if (res == CURLE_COULDNT_CONNECT || (res == CURLE_OPERATION_TIMEDOUT && !status))
            return hl_err_set(x->err, HL_EIO, "could not connect to the server at %s: is `hyperlama serve` running?", c->base);
        return hl_err_set(x->err, HL_EIO, "request to %s failed: %s", url, curl_easy_strerror(res));
    }
    if (status < 200 || status >= 300) {
        error_from_body(x, status, x->err);
        return x->err->code;
    }
    /* the last line of a stream may come without its newline */
    if (x->stream && x->body.len) {
        int r = handle_line(x, x->body.data, x->body.len);
        hl_buf_reset(&x->body);
        if (x->stopped) return 1;
        if (r) return x->err->code ? x->err->code : HL_EIO;
    }
    return 0;
}

int cli_request(cli_client *c, const char *method, const char *path, const char *body, long *status, hl_buf *resp,
                hl_err *err) {
    hl_err local = {0};
    if (!err) err = &local;
    xfer x = {.err = err};
    int rc = perform(c, method, path, body, &x, 0);
    if (status) *status = x.status;
    if (rc == 1) rc = hl_err_set(err, HL_EIO, "cancelled");
    if (!rc && resp) {
        *resp = x.body;
        memset(&x.body, 0, sizeof x.body);
    }
    hl_buf_free(&x.body);
    return rc;
}

int cli_json(cli_client *c, const char *method, const char *path, const char *body, struct json_object **out,
             hl_err *err) {
    hl_buf b = {0};
    *out = NULL;
    int rc = cli_request(c, method, path, body, NULL, &b, err);
    if (rc) return rc;
    if (b.len) {
        struct json_tokener *tok = json_tokener_new();
        struct json_object *o = tok ? json_tokener_parse_ex(tok, b.data, (int)b.len) : NULL;
        if (!o || json_tokener_get_error(tok) != json_tokener_success) {
            if (o) json_object_put(o);
            rc = hl_err_set(err, HL_EIO, "the server's reply to %s is not JSON", path);
        } else {
            *out = o;
        }
        if (tok) json_tokener_free(tok);
    }
    hl_buf_free(&b);
    return rc;
}

int cli_stream(cli_client *c, const char *path, const char *body, cli_line_fn fn, void *ctx, hl_err *err) {
    hl_err local = {0};
    if (!err) err = &local;
    xfer x = {.err = err, .stream = 1, .fn = fn, .ctx = ctx};
    int rc = perform(c, "POST", path, body, &x, 0);
    hl_buf_free(&x.body);
    return rc;
}

/* ---- finding or starting the server ---------------------------------------- */

int cli_client_ping(cli_client *c) {
    hl_err err = {0};
    xfer x = {.err = &err};
    const volatile sig_atomic_t *cancel = c->cancel;
    c->cancel = NULL;
    perform(c, "GET", "/", NULL, &x, 1000);
    c->cancel = cancel;
    hl_buf_free(&x.body);
    return x.status != 0;
}

static int mkdirs(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The last non-empty line of the log (what a failed start said). */
static void last_log_line(const char *path, char *out, size_t cap) {
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char tail[1024];
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : 0;
    long from = size > (long)sizeof tail - 1 ? size - (long)sizeof tail + 1 : 0;
    size_t n = fseek(f, from, SEEK_SET) == 0 ? fread(tail, 1, sizeof tail - 1, f) : 0;
    fclose(f);
    tail[n] = 0;
    while (n && (tail[n - 1] == '\n' || tail[n - 1] == '\r')) tail[--n] = 0;
    char *nl = strrchr(tail, '\n');
    snprintf(out, cap, "%s", nl ? nl + 1 : tail);
}

/* Addresses a server started here would answer on. */
static int is_local(const char *h) {
    return !strncmp(h, "127.", 4) || !strcmp(h, "localhost") || !strcmp(h, "::1") || !strcmp(h, "0.0.0.0") ||
           !strcmp(h, "::");
}

int cli_client_ensure(cli_client *c, int timeout_ms, hl_err *err) {
    if (cli_client_ping(c)) return 0;
    /* a server elsewhere is not ours to start */
    if (!is_local(c->host))
        return hl_err_set(err, HL_EIO, "could not connect to the server at %s (HYPERLAMA_HOST): start it there with `hyperlama serve`",
                          c->base);
    char log[4200], pidf[4200], dir[4200];
    cli_client_log_path(log, sizeof log);
    cli_client_pid_path(pidf, sizeof pidf);
    snprintf(dir, sizeof dir, "%s", log);
    *strrchr(dir, '/') = 0;
    if (mkdirs(dir)) return hl_err_set(err, HL_EIO, "could not connect to the server at %s, and cannot create %s to start one: %s",
                                       c->base, dir, strerror(errno));
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return hl_err_set(err, HL_EIO, "cannot open the server log %s: %s", log, strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        return hl_err_set(err, HL_EIO, "cannot start the server: fork: %s", strerror(errno));
    }
    if (pid == 0) {
        /* the child: its own session (a Ctrl+C in this terminal must not
         * reach it), no terminal, output to the log */
        setsid();
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execl("/proc/self/exe", "hyperlama", "serve", (char *)NULL);
        dprintf(2, "cannot start /proc/self/exe serve: %s\n", strerror(errno));
        _exit(127);
    }
    close(fd);
    c->started = 1;
    FILE *pf = fopen(pidf, "w");
    if (pf) {
        fprintf(pf, "%d\n", (int)pid);
        fclose(pf);
    }
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            unlink(pidf);
            char last[320];
            last_log_line(log, last, sizeof last);
            return hl_err_set(err, HL_EIO, "the server at %s did not start (exit status %d)%s%s; see %s", c->base,
                              WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), last[0] ? ": " : "", last, log);
        }
        if (cli_client_ping(c)) return 0;
        sleep_ms(100);
    }
    return hl_err_set(err, HL_EIO, "the server at %s did not answer within %d s after starting: see %s", c->base,
                      timeout_ms / 1000, log);
}

/* ---- blobs (create against a server that does not share our files) ------- */

static int sha256_file(const char *path, char out[72], int64_t *size, hl_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return hl_err_set(err, HL_ENOENT, "%s: %s", path, strerror(errno));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        fclose(f);
        EVP_MD_CTX_free(md);
        return hl_err_set(err, HL_ENOMEM, "cannot initialize sha256");
    }
    static const size_t CHUNK = 1 << 20;
    unsigned char *buf = malloc(CHUNK);
    size_t n;
    *size = 0;
    while (buf && (n = fread(buf, 1, CHUNK, f)) > 0) {
        EVP_DigestUpdate(md, buf, n);
        *size += (int64_t)n;
    }
    int bad = !buf || ferror(f);
    unsigned char d[32];
    unsigned dl = 0;
    EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
    free(buf);
    fclose(f);
    if (bad) return hl_err_set(err, HL_EIO, "reading %s failed", path);
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++) snprintf(out + 7 + 2 * i, 3, "%02x", d[i]);
    return 0;
}

int cli_upload_blob(cli_client *c, const char *path, char digest[72], hl_err *err) {
    int64_t size;
    int rc = sha256_file(path, digest, &size, err);
    if (rc) return rc;
    char url_path[128];
    snprintf(url_path, sizeof url_path, "/api/blobs/%s", digest);
    long status = 0;
    hl_err e2 = {0};
    if (cli_request(c, "HEAD", url_path, NULL, &status, NULL, &e2) == 0 && status == 200) return 0; /* already there */
    FILE *f = fopen(path, "rb");
    if (!f) return hl_err_set(err, HL_ENOENT, "%s: %s", path, strerror(errno));
    CURL *h = curl_easy_init();
    if (!h) {
        fclose(f);
        return hl_err_set(err, HL_ENOMEM, "cannot initialize libcurl");
    }
    char url[1200];
    snprintf(url, sizeof url, "%s%s", c->base, url_path);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/octet-stream");
    if (c->auth[0]) hdrs = curl_slist_append(hdrs, c->auth);
    xfer x = {.err = err};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_READDATA, f); /* libcurl's default reader is fread */
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    CURLcode res = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    fclose(f);
    if (res != CURLE_OK) rc = hl_err_set(err, HL_EIO, "uploading %s failed: %s", path, curl_easy_strerror(res));
    else if (status < 200 || status >= 300) {
        error_from_body(&x, status, err);
        rc = hl_err_prefix(err, "uploading %s: ", path);
    }
    hl_buf_free(&x.body);
    return rc;
}

int cli_client_is_local(const cli_client *c) { return is_local(c->host); }
