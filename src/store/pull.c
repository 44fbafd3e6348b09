/* Pulling from a registry with the protocol Ollama uses (Docker registry v2):
 * GET <base>/v2/<ns>/<model>/manifests/<tag>, then every layer with GET
 * <base>/v2/<ns>/<model>/blobs/<digest>, following redirects. Blobs download
 * in parallel (curl multi) into blobs/sha256-<hex>-partial, hashed while
 * streaming; an interrupted download resumes with a Range request (the
 * partial bytes are re-hashed first); a finished blob is verified (size and
 * sha256) before it is renamed into place, and the manifest is written last,
 * so a failed or corrupt pull never leaves a model that names a bad blob.
 * Also hf.co/ORG/REPO[:QUANT] (Hugging Face serves the same protocol at
 * https://hf.co/v2/...) and plain http(s) URLs of GGUF files.
 *
 * Transport security: https, except to loopback hosts (tests, local mirrors)
 * or with ops->insecure. The default registry's base URL can be replaced by
 * ops->registry or $HYPERLAMA_REGISTRY. */
#include "store/registry.h"
#include "store/store_internal.h"

#include "base/buf.h"
#include "base/file.h"
#include "gguf/gguf.h"

#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define PULL_RETRIES 6

int store_is_loopback(const char *host) {
    return !strncmp(host, "127.", 4) || !strcasecmp(host, "localhost") || !strncasecmp(host, "localhost:", 10) ||
           !strncmp(host, "[::1]", 5);
}

void store_curl_setup(CURL *c, const char *url) {
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "hyperlama/0.1 (ollama-compatible)");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    /* a stalled transfer (under 1 KB/s for 60 s) is dropped and retried */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
}

static size_t mem_write(char *p, size_t sz, size_t n, void *ud) {
    hl_buf *b = ud;
    if (b->len + sz * n > STORE_MANIFEST_MAX) return 0; /* refuse oversized manifests */
    hl_buf_append(b, p, sz * n);
    return b->oom ? 0 : sz * n;
}

/* The pull's bearer token (registry_auth.c): none until the registry answers
 * 401, then sent with every request to the registry's own URLs and reused
 * for all blobs. libcurl never forwards it across a redirect to another
 * host, so a CDN behind a blob redirect does not see it. */
#define PULL_AUTH_REFRESHES 4
typedef struct pull_auth {
    char registry[256];        /* host[:port], for messages */
    char scope[STORE_PART_MAX * 2 + 32]; /* "repository:ns/model:pull" when the challenge has none */
    const store_ops *ops;
    char *token;
    struct curl_slist *hdr;    /* "Authorization: Bearer ..." for token */
    struct curl_slist *retired[PULL_AUTH_REFRESHES]; /* earlier headers, still in use by running transfers */
    int gen;                   /* tokens obtained so far */
} pull_auth;

static void auth_free(pull_auth *a) {
    free(a->token);
    curl_slist_free_all(a->hdr);
    for (int i = 0; i < PULL_AUTH_REFRESHES; i++) curl_slist_free_all(a->retired[i]);
}

/* Answers the challenge of c's last response with a fresh token. */
static int auth_refresh(pull_auth *a, CURL *c, hl_err *err) {
    if (a->gen >= PULL_AUTH_REFRESHES)
        return hl_err_set(err, HL_EIO, "registry %s keeps asking for new tokens (%d so far)", a->registry, a->gen);
    store_auth_challenge ch;
    char *tok = NULL;
    int rc = store_auth_challenge_of(c, &ch, a->registry, err);
    if (!rc) rc = store_auth_token(&ch, a->registry, a->scope, a->ops, &tok, err);
    if (rc) return rc;
    struct curl_slist *h = store_auth_header(tok);
    if (!h) {
        free(tok);
        return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    a->retired[a->gen++] = a->hdr;
    a->hdr = h;
    free(a->token);
    a->token = tok;
    return HL_OK;
}

static int fetch_manifest(const char *url, hl_buf *out, pull_auth *auth, hl_err *err) {
    CURL *c = curl_easy_init();
    if (!c) return hl_err_set(err, HL_ENOMEM, "cannot start a transfer");
    store_curl_setup(c, url);
    struct curl_slist *h = curl_slist_append(NULL, "Accept: " STORE_MT_MANIFEST);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    int rc = HL_OK, with_token = 0;
    CURLcode cr = CURLE_OK;
    long status = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        hl_buf_reset(out);
        cr = curl_easy_perform(c);
        if (cr != CURLE_OK) continue;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (status != 401 || with_token) break;
        /* the registry wants a token: get one, then ask again with it */
        if ((rc = auth_refresh(auth, c, err))) break;
        curl_slist_free_all(h);
        h = curl_slist_append(NULL, "Accept: " STORE_MT_MANIFEST);
        h = h ? curl_slist_append(h, auth->hdr->data) : NULL;
        if (!h) {
            rc = hl_err_set(err, HL_ENOMEM, "out of memory");
            break;
        }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        with_token = 1;
        attempt--; /* the handshake is not a failed attempt */
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (rc) {
        /* the handshake failed: err says why */
    } else if (cr != CURLE_OK) rc = hl_err_set(err, HL_EIO, "pull model manifest: %s (%s)", curl_easy_strerror(cr), url);
    else if (status == 401)
        rc = hl_err_set(err, HL_EINVAL, "pull model manifest: registry %s refused the token it issued (HTTP 401 for %s)",
                        auth->registry, url);
    else if (status == 404) rc = hl_err_set(err, HL_ENOENT, "pull model manifest: file does not exist (%s)", url);
    else if (status != 200) rc = hl_err_set(err, HL_EIO, "pull model manifest: HTTP %ld from %s", status, url);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

/* ---- blob transfers ---- */
typedef struct xfer {
    CURL *c;
    char url[2048];
    char digest[72];  /* expected; empty for a URL pull (learned from the content) */
    char partial[STORE_PATH_MAX], final_path[STORE_PATH_MAX];
    int64_t size;     /* expected, -1 when unknown */
    int64_t have;     /* bytes in the partial file */
    int fd;
    store_sha *sha;
    int attempts, done, failed, restart;
    int auth_gen, auth_retried; /* the token generation sent; a 401 was answered once */
    int seen_body; /* the current response has delivered bytes */
    long status;
    char status_text[96];
    char err[512];
} xfer;

typedef struct pull_ctx {
    const store_ops *ops;
    xfer *x;
    int n;
    int64_t last_report_ns;
    pull_auth *auth; /* NULL for a plain-URL pull */
} pull_ctx;

/* (Re)opens the partial file and hashes what is already there. */
static int xfer_open(xfer *x) {
    if (x->fd >= 0) close(x->fd);
    if (x->sha) {
        char dummy[65];
        store_sha_final(x->sha, dummy);
    }
    x->sha = store_sha_new();
    x->fd = open(x->partial, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (x->fd < 0 || !x->sha) {
        snprintf(x->err, sizeof x->err, "cannot open %s: %s", x->partial, strerror(errno));
        return -1;
    }
    if (x->restart) {
        if (ftruncate(x->fd, 0) != 0) return -1;
        x->restart = 0;
    }
    char *buf = malloc(1 << 20);
    if (!buf) return -1;
    x->have = 0;
    for (;;) {
        ssize_t n = read(x->fd, buf, 1 << 20);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        store_sha_update(x->sha, buf, (size_t)n);
        x->have += n;
    }
    free(buf);
    if (x->size >= 0 && x->have > x->size) { /* longer than the blob: start over */
        x->restart = 1;
        return xfer_open(x);
    }
    return 0;
}

static size_t blob_write(char *p, size_t sz, size_t n, void *ud) {
    xfer *x = ud;
    size_t len = sz * n;
    long status = 0;
    curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200 && status != 206) return len; /* error body: ignored, status checked at the end */
    if (!x->seen_body && status == 200 && x->have > 0) {
        /* the server ignored our Range: start over from byte 0 */
        if (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0) return 0;
        char dummy[65];
        store_sha_final(x->sha, dummy);
        x->sha = store_sha_new();
        x->have = 0;
        if (!x->sha) return 0;
    }
    if (x->size >= 0 && x->have + (int64_t)len > x->size) {
        snprintf(x->err, sizeof x->err, "blob %s is longer than the %lld bytes the manifest says", x->digest, (long long)x->size);
        x->failed = 1;
        return 0;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = pwrite(x->fd, p + off, len - off, x->have + (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            snprintf(x->err, sizeof x->err, "cannot write %s: %s", x->partial, strerror(errno));
            x->failed = 1;
            return 0;
        }
        off += (size_t)w;
    }
    store_sha_update(x->sha, p, len);
    x->have += (int64_t)len;
    x->seen_body = 1;
    return len;
}

static int start_xfer(CURLM *m, xfer *x, const pull_auth *auth, hl_err *err) {
    if (xfer_open(x)) return hl_err_set(err, HL_EIO, "%s", x->err);
    if (x->size >= 0 && x->have == x->size) { /* nothing left to fetch */
        x->done = 1;
        return HL_OK;
    }
    if (x->c) {
        curl_multi_remove_handle(m, x->c);
        curl_easy_cleanup(x->c);
    }
    x->c = curl_easy_init();
    if (!x->c) return hl_err_set(err, HL_ENOMEM, "cannot start a transfer");
    x->seen_body = 0;
    store_curl_setup(x->c, x->url);
    curl_easy_setopt(x->c, CURLOPT_WRITEFUNCTION, blob_write);
    curl_easy_setopt(x->c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->c, CURLOPT_PRIVATE, x);
    if (auth && auth->hdr) curl_easy_setopt(x->c, CURLOPT_HTTPHEADER, auth->hdr);
    x->auth_gen = auth ? auth->gen : 0;
    if (x->have > 0) {
        char range[64];
        snprintf(range, sizeof range, "%lld-", (long long)x->have);
        curl_easy_setopt(x->c, CURLOPT_RANGE, range);
    }
    curl_multi_add_handle(m, x->c);
    return HL_OK;
}

static void report_all(pull_ctx *pc) {
    for (int i = 0; i < pc->n; i++) {
        xfer *x = &pc->x[i];
        store_report(pc->ops, x->status_text, x->digest[0] ? x->digest : NULL, x->size >= 0 ? x->size : 0, x->have);
    }
}

/* Runs every transfer to completion (with retries), at most `parallel` at once. */
static int run_xfers(pull_ctx *pc, int parallel, hl_err *err) {
    CURLM *m = curl_multi_init();
    if (!m) return hl_err_set(err, HL_ENOMEM, "cannot start transfers");
    int rc = HL_OK, next = 0, active = 0;
    while (rc == HL_OK) {
        while (active < parallel && next < pc->n && rc == HL_OK) {
            xfer *x = &pc->x[next++];
            if ((rc = start_xfer(m, x, pc->auth, err))) break;
            if (!x->done) active++;
        }
        if (rc || (active == 0 && next >= pc->n)) break;
        if (store_cancelled(pc->ops)) {
            rc = hl_err_set(err, HL_EIO, "cancelled");
            break;
        }
        int running;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            xfer *x;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            CURLcode res = msg->data.result;
            curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &x->status);
            int complete = res == CURLE_OK && (x->status == 200 || x->status == 206) &&
                           (x->size < 0 || x->have == x->size);
            if (complete) {
                x->done = 1;
                active--;
                continue;
            }
            if (x->failed) {
                rc = hl_err_set(err, HL_EIO, "%s", x->err);
                break;
            }
            if (res == CURLE_OK && x->status == 401 && pc->auth) {
                /* a token (a newer one, when another blob already renewed it) */
                if (x->auth_gen == pc->auth->gen) {
                    if (x->auth_retried++) {
                        rc = hl_err_set(err, HL_EINVAL, "download %s: registry %s refused the token it issued (HTTP 401)",
                                        x->digest, pc->auth->registry);
                        break;
                    }
                    if ((rc = auth_refresh(pc->auth, x->c, err))) break;
                }
                if ((rc = start_xfer(m, x, pc->auth, err))) break;
                if (x->done) active--;
                continue;
            }
            if (res == CURLE_OK && x->status == 416) x->restart = 1; /* our Range made no sense: start over */
            else if (res == CURLE_OK && x->status >= 400 && x->status != 429 && x->status < 500) {
                rc = hl_err_set(err, x->status == 404 ? HL_ENOENT : HL_EIO, "download %s: HTTP %ld",
                                x->digest[0] ? x->digest : x->url, x->status);
                break;
            }
            if (++x->attempts > PULL_RETRIES) {
                rc = hl_err_set(err, HL_EIO, "download %s failed after %d attempts: %s (HTTP %ld)",
                                x->digest[0] ? x->digest : x->url, PULL_RETRIES, curl_easy_strerror(res), x->status);
                break;
            }
            /* resume from what we have (a dropped connection, a 5xx) */
            usleep(100000u * (unsigned)x->attempts);
            if ((rc = start_xfer(m, x, pc->auth, err))) break;
            if (x->done) active--;
        }
        int64_t now = 0;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        now = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
        if (now - pc->last_report_ns > 100000000) {
            report_all(pc);
            pc->last_report_ns = now;
        }
        if (rc == HL_OK && running) curl_multi_poll(m, NULL, 0, 200, NULL);
    }
    for (int i = 0; i < pc->n; i++) {
        if (pc->x[i].c) {
            curl_multi_remove_handle(m, pc->x[i].c);
            curl_easy_cleanup(pc->x[i].c);
            pc->x[i].c = NULL;
        }
    }
    curl_multi_cleanup(m);
    if (rc == HL_OK) report_all(pc);
    return rc;
}

/* Verifies a finished partial file and moves it into place. */
static int finish_xfer(store *s, xfer *x, hl_err *err) {
    char hex[65];
    store_sha_final(x->sha, hex);
    x->sha = NULL;
    if (x->fd >= 0) {
        if (fsync(x->fd) != 0) {
            close(x->fd);
            x->fd = -1;
            return hl_err_set(err, HL_EIO, "cannot sync %s: %s", x->partial, strerror(errno));
        }
        close(x->fd);
        x->fd = -1;
    }
    if (x->digest[0]) {
        if (strcmp(hex, x->digest + 7) != 0 || (x->size >= 0 && x->have != x->size)) {
            unlink(x->partial); /* corrupt: never resume from it */
            return hl_err_set(err, HL_EINVAL, "digest mismatch, file must be downloaded again: want %s, got sha256:%s",
                              x->digest, hex);
        }
    } else {
        snprintf(x->digest, sizeof x->digest, "sha256:%s", hex);
        int rc = store_blob_path(s, x->digest, x->final_path, sizeof x->final_path, err);
        if (rc) return rc;
    }
    if (rename(x->partial, x->final_path) != 0)
        return hl_err_set(err, HL_EIO, "cannot rename %s: %s", x->partial, strerror(errno));
    store_fsync_dir(x->final_path);
    return HL_OK;
}

static void free_xfers(xfer *v, int n) {
    for (int i = 0; i < n; i++) {
        if (v[i].fd >= 0) close(v[i].fd);
        if (v[i].sha) {
            char d[65];
            store_sha_final(v[i].sha, d);
        }
    }
    free(v);
}

static int base_url(const store_name *n, const store_ops *ops, char *out, size_t cap, hl_err *err) {
    const char *env = getenv("HYPERLAMA_REGISTRY");
    if (!strcasecmp(n->host, STORE_DEFAULT_HOST)) {
        const char *b = ops && ops->registry ? ops->registry : env && *env ? env : "https://" STORE_DEFAULT_HOST;
        snprintf(out, cap, "%s", b);
    } else if (!strcasecmp(n->host, "hf.co") || !strcasecmp(n->host, "huggingface.co")) {
        snprintf(out, cap, "https://hf.co");
    } else if (store_is_loopback(n->host) || (ops && ops->insecure)) {
        snprintf(out, cap, "http://%s", n->host);
    } else {
        snprintf(out, cap, "https://%s", n->host);
    }
    size_t l = strlen(out);
    while (l > 0 && out[l - 1] == '/') out[--l] = 0;
    if (strncmp(out, "http://", 7) == 0) {
        const char *h = out + 7;
        if (!store_is_loopback(h) && !(ops && ops->insecure))
            return hl_err_set(err, HL_EINVAL, "refusing plain http to %s (use https, or --insecure)", out);
    } else if (strncmp(out, "https://", 8) != 0) {
        return hl_err_set(err, HL_EINVAL, "registry URL must start with https:// (got %s)", out);
    }
    return HL_OK;
}

static int pull_url(store *s, const char *url, const store_ops *ops, hl_err *err);

int store_pull(store *s, const char *name, const store_ops *ops, hl_err *err) {
    if (!name || !*name) return hl_err_set(err, HL_EINVAL, "pull needs a model name");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!strncmp(name, "https://", 8) || !strncmp(name, "http://", 7)) return pull_url(s, name, ops, err);
    store_name n;
    int rc = store_name_parse(name, &n, err);
    if (rc) return rc;
    char base[1024], url[2048];
    if ((rc = base_url(&n, ops, base, sizeof base, err))) return rc;
    snprintf(url, sizeof url, "%s/v2/%s/%s/manifests/%s", base, n.ns, n.model, n.tag);
    store_report(ops, "pulling manifest", NULL, 0, 0);
    pull_auth auth = {.ops = ops};
    const char *host = strstr(base, "://") + 3;
    snprintf(auth.registry, sizeof auth.registry, "%.*s", (int)strcspn(host, "/"), host);
    snprintf(auth.scope, sizeof auth.scope, "repository:%s/%s:pull", n.ns, n.model);
    hl_buf man = {0};
    if ((rc = fetch_manifest(url, &man, &auth, err))) {
        auth_free(&auth);
        hl_buf_free(&man);
        return rc;
    }
    store_manifest m;
    if ((rc = store_manifest_parse(man.data ? man.data : "", man.len, &m, err))) {
        hl_err_prefix(err, "pull %s: ", name);
        auth_free(&auth);
        hl_buf_free(&man);
        return rc;
    }
    /* config + layers, without duplicates */
    xfer *xs = calloc((size_t)m.n_layers + 1, sizeof *xs);
    if (!xs) {
        auth_free(&auth);
        hl_buf_free(&man);
        return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    int nx = 0;
    for (int i = -1; i < m.n_layers && rc == HL_OK; i++) {
        const store_layer *l = i < 0 ? &m.config : &m.layers[i];
        int dup = 0;
        for (int k = 0; k < nx; k++) dup |= !strcmp(xs[k].digest, l->digest);
        if (dup) continue;
        xfer *x = &xs[nx];
        x->fd = -1;
        snprintf(x->digest, sizeof x->digest, "%s", l->digest);
        x->size = l->size;
        snprintf(x->url, sizeof x->url, "%s/v2/%s/%s/blobs/%s", base, n.ns, n.model, l->digest);
        snprintf(x->status_text, sizeof x->status_text, "pulling %.12s", l->digest + 7);
        if ((rc = store_blob_path(s, l->digest, x->final_path, sizeof x->final_path, err))) break;
        snprintf(x->partial, sizeof x->partial, "%s-partial", x->final_path);
        struct stat st;
        if (stat(x->final_path, &st) == 0 && st.st_size == l->size) {
            store_report(ops, x->status_text, x->digest, l->size, l->size);
            continue; /* already here: content-addressed */
        }
        nx++;
    }
    pull_ctx pc = {ops, xs, nx, 0, &auth};
    if (rc == HL_OK) rc = run_xfers(&pc, ops && ops->parallel > 0 ? ops->parallel : 4, err);
    if (rc == HL_OK) store_report(ops, "verifying sha256 digest", NULL, 0, 0);
    for (int i = 0; i < nx && rc == HL_OK; i++) rc = finish_xfer(s, &xs[i], err);
    free_xfers(xs, nx);
    auth_free(&auth);
    if (rc == HL_OK) {
        store_report(ops, "writing manifest", NULL, 0, 0);
        char path[STORE_PATH_MAX], dir[STORE_PATH_MAX];
        if ((rc = store_manifest_path(s, &n, path, sizeof path, err)) == HL_OK) {
            snprintf(dir, sizeof dir, "%s", path);
            *strrchr(dir, '/') = 0;
            if ((rc = hl_mkdirs(dir, err)) == HL_OK) {
                int lock = store_lock(s, err);
                if (lock < 0) rc = lock;
                else {
                    rc = hl_write_file_atomic(path, man.data, man.len, err);
                    store_unlock(lock);
                }
            }
        }
        if (rc == HL_OK) {
            store_index_refresh(s, NULL);
            store_report(ops, "success", NULL, 0, 0);
        }
    }
    hl_buf_free(&man);
    return rc;
}

/* A plain URL of a GGUF file: named after the file (without .gguf). */
static int pull_url(store *s, const char *url, const store_ops *ops, hl_err *err) {
    if (strlen(url) >= 2048) return hl_err_set(err, HL_EINVAL, "URL is too long");
    const char *host = url + (url[4] == 's' ? 8 : 7);
    if (url[4] != 's' && !store_is_loopback(host) && !(ops && ops->insecure))
        return hl_err_set(err, HL_EINVAL, "refusing plain http to %s (use https, or --insecure)", url);
    const char *q = strpbrk(url, "?#");
    size_t ulen = q ? (size_t)(q - url) : strlen(url);
    const char *slash = url + ulen;
    while (slash > host && slash[-1] != '/') slash--;
    char base[STORE_PART_MAX + 1] = {0};
    size_t bl = 0;
    for (const char *p = slash; p < url + ulen && bl < STORE_PART_MAX; p++)
        base[bl++] = (char)(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.' ? *p : '-');
    if (bl > 5 && !strcasecmp(base + bl - 5, ".gguf")) base[bl -= 5] = 0;
    store_name n;
    int rc = store_name_parse(base, &n, err);
    if (rc) return hl_err_prefix(err, "cannot name the model after the URL's file: ");
    char hex[65];
    store_sha_hex(url, strlen(url), hex);
    xfer x = {0};
    x.fd = -1;
    x.size = -1;
    snprintf(x.url, sizeof x.url, "%s", url);
    snprintf(x.status_text, sizeof x.status_text, "pulling %.40s", slash);
    if ((rc = store_pathf(x.partial, sizeof x.partial, err, "%s/blobs/url-%.32s-partial", s->root, hex))) return rc;
    pull_ctx pc = {ops, &x, 1, 0, NULL};
    if ((rc = run_xfers(&pc, 1, err)) == HL_OK) {
        store_report(ops, "verifying sha256 digest", NULL, 0, 0);
        rc = finish_xfer(s, &x, err);
    }
    if (x.fd >= 0) close(x.fd);
    if (x.sha) store_sha_final(x.sha, hex);
    if (rc) return rc;
    gguf_file *f;
    if ((rc = gguf_open(&f, x.final_path, err))) {
        unlink(x.final_path);
        return hl_err_prefix(err, "%s is not a usable GGUF file: ", url);
    }
    gguf_close(f);
    store_layer l = {STORE_MT_MODEL, "", x.have};
    snprintf(l.digest, sizeof l.digest, "%s", x.digest);
    store_report(ops, "writing manifest", NULL, 0, 0);
    if ((rc = store_write_manifest(s, &n, &l, 1, err)) == HL_OK) store_report(ops, "success", NULL, 0, 0);
    return rc;
}
