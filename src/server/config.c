/* Server configuration: defaults, the TOML file (~/.hyperlama/config.toml,
 * written with commented defaults on first start), the environment, and
 * validation. Precedence is applied by the caller's order of calls:
 * defaults, then file, then environment, then flags. */
#include "server/server.h"
#include "server/toml.h"
#include "backend/kv.h"
#include "base/file.h"
#include "model/model.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void srv_config_defaults(srv_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->host, sizeof c->host, "127.0.0.1");
    c->port = 11434;
    c->http_threads = 4;
    c->max_body_bytes = 16ll << 20;
    c->max_upload_bytes = 64ll << 30;
    c->request_timeout_s = 600;
    c->grace_s = 10;
    c->max_loaded = 3;
    c->keep_alive_ns = 5ll * 60 * 1000000000ll;
    c->max_seqs = 16;
    c->max_queue = 64;
    c->block_size = 16;
    c->step_tokens = 512;
    c->prefix_cache = 1;
    c->kv_type = HL_TYPE_F16;
    snprintf(c->backend, sizeof c->backend, "auto");
    c->vulkan_device = -1;
    c->gpu_memory_fraction = HL_GPU_MEMORY_FRACTION_DEFAULT;
    c->speculative = 1;
    c->num_draft = 8;
    snprintf(c->version, sizeof c->version, "0.1.0");
}

void srv_config_free(srv_config *c) {
    for (int i = 0; i < c->n_origins; i++) free(c->origins[i]);
    free(c->api_key);
    free(c->models_dir);
    free(c->draft_model);
    free(c->config_path);
    memset(c, 0, sizeof *c);
}

char *srv_config_default_path(void) {
    const char *p = getenv("HYPERLAMA_CONFIG");
    if (p && *p) return strdup(p);
    const char *home = getenv("HOME");
    if (!home || !*home) home = ".";
    size_t n = strlen(home) + 32;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/.hyperlama/config.toml", home);
    return s;
}

static const char DEFAULT_TEXT[] =
    "# HyperLlama server configuration (hyperlama serve).\n"
    "# Precedence: command-line flags > environment (HYPERLAMA_*) > this file > defaults.\n"
    "# Every line is commented out: the values shown are the defaults.\n"
    "\n"
    "[server]\n"
    "# Address to listen on. Loopback only unless you ask; binding another address\n"
    "# without an api_key prints a warning. (HYPERLAMA_HOST=host:port)\n"
    "# host = \"127.0.0.1\"\n"
    "# port = 11434\n"
    "# Extra CORS origins allowed besides localhost ones, e.g. [\"https://app.example\"] or [\"*\"].\n"
    "# (HYPERLAMA_ORIGINS, comma-separated)\n"
    "# origins = []\n"
    "# When set, every route but /health needs \"Authorization: Bearer <key>\". (HYPERLAMA_API_KEY)\n"
    "# api_key = \"\"\n"
    "# HTTP worker threads (they never wait on the engine).\n"
    "# http_threads = 4\n"
    "# Largest JSON request body, and largest blob upload (POST /api/blobs).\n"
    "# max_body = \"16MiB\"\n"
    "# max_upload = \"64GiB\"\n"
    "# Idle connection timeout in seconds.\n"
    "# request_timeout = 600\n"
    "# On SIGINT/SIGTERM, seconds running requests get to finish.\n"
    "# grace_period = 10\n"
    "# \"pretty\" or \"json\" (one object per line).\n"
    "# log_format = \"pretty\"\n"
    "# Unknown fields in /v1 requests are ignored (logged at debug level), as Ollama and vLLM\n"
    "# do; true makes them a 400, as OpenAI does. (HYPERLAMA_STRICT_REQUESTS)\n"
    "# strict_requests = false\n"
    "\n"
    "[models]\n"
    "# Model store (HYPERLAMA_MODELS); default ~/.hyperlama/models.\n"
    "# dir = \"\"\n"
    "# Models loaded at once; the least recently used idle one is unloaded first.\n"
    "# (HYPERLAMA_MAX_LOADED_MODELS)\n"
    "# max_loaded = 3\n"
    "# How long an idle model stays loaded: \"5m\", \"1h\", \"0\" (unload at once), \"-1\" (forever).\n"
    "# (HYPERLAMA_KEEP_ALIVE)\n"
    "# keep_alive = \"5m\"\n"
    "\n"
    "[engine]\n"
    "# What runs the models: \"auto\" (the GPU with the most memory through Vulkan, never a CPU\n"
    "# implementation such as lavapipe; else the CPU, with a log line saying why), \"cpu\",\n"
    "# \"vulkan\" (a GPU, or fail), \"vulkan:N\" (Vulkan device N, whatever it is) or \"ref\" (the\n"
    "# scalar reference backend: slow, for checking results). A model the chosen backend cannot\n"
    "# run is run on the CPU, with a log line saying why. (HYPERLAMA_BACKEND)\n"
    "# backend = \"auto\"\n"
    "# The Vulkan device auto and vulkan take (an index in the loader's list, as the serve banner\n"
    "# prints it); -1 = the GPU with the most memory. (HYPERLAMA_VULKAN_DEVICE)\n"
    "# vulkan_device = -1\n"
    "# Share of the GPU's free memory the models may take (weights, buffers, KV cache); a model\n"
    "# that does not fit is refused with what it needs. (HYPERLAMA_GPU_MEMORY_FRACTION)\n"
    "# gpu_memory_fraction = 0.9\n"
    "# Compute threads: one pool shared by every loaded model; 0 = one per core.\n"
    "# (HYPERLAMA_NUM_THREADS)\n"
    "# threads = 0\n"
    "# KV-cache memory per model; \"0\" = min(2 GiB, 25% of available memory). (HYPERLAMA_KV_BUDGET)\n"
    "# kv_budget = \"0\"\n"
    "# KV-cache element type: \"f16\", or \"q8_0\" for half the memory per token (twice the tokens\n"
    "# in the same budget) at a small accuracy cost. (HYPERLAMA_KV_CACHE_TYPE)\n"
    "# kv_cache_type = \"f16\"\n"
    "# Default context per request (num_ctx); 0 = the model's, capped by the KV pool.\n"
    "# (HYPERLAMA_CONTEXT_LENGTH)\n"
    "# num_ctx = 0\n"
    "# Sequences decoding at once (HYPERLAMA_NUM_PARALLEL) and requests waiting before 503\n"
    "# (HYPERLAMA_MAX_QUEUE).\n"
    "# max_seqs = 16\n"
    "# max_queue = 64\n"
    "# block_size = 16\n"
    "# step_tokens = 512\n"
    "# prefix_cache = true\n"
    "# Speculative decoding: prompt-lookup (n-gram) drafts verified in the same step, lossless;\n"
    "# the engine adapts the draft length (and turns it off) by acceptance and batch size.\n"
    "# Requests override it with the options \"speculative\" and \"num_draft\". (HYPERLAMA_SPECULATIVE)\n"
    "# speculative = true\n"
    "# num_draft = 8\n"
    "# A draft model instead of prompt lookup, for every model whose vocabulary it shares (a name or\n"
    "# a GGUF path; models it cannot draft for keep prompt lookup). A Modelfile's PARAMETER\n"
    "# draft_model and a request's option \"draft_model\" come first (\"\": none). (HYPERLAMA_DRAFT_MODEL)\n"
    "# draft_model = \"\"\n";

const char *srv_config_default_text(void) { return DEFAULT_TEXT; }

int srv_parse_duration(const char *s, int64_t *ns, hl_err *err) {
    if (!s || !*s) return hl_err_set(err, HL_EINVAL, "empty duration");
    const char *p = s;
    int neg = 0;
    if (*p == '-' || *p == '+') neg = *p++ == '-';
    double total = 0;
    int any = 0;
    while (*p) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno || !isfinite(v) || v < 0)
            return hl_err_set(err, HL_EINVAL, "invalid duration \"%s\" (use e.g. \"5m\", \"30s\", \"1h\", \"-1\")", s);
        p = end;
        double unit;
        if (!*p && !any) unit = 1e9; /* a bare number is seconds, as Ollama's keep_alive */
        else if (!strncmp(p, "ns", 2)) unit = 1, p += 2;
        else if (!strncmp(p, "us", 2) || !strncmp(p, "µs", 3)) unit = 1e3, p += (*p == 'u' ? 2 : 3);
        else if (!strncmp(p, "ms", 2)) unit = 1e6, p += 2;
        else if (*p == 's') unit = 1e9, p++;
        else if (*p == 'm') unit = 60e9, p++;
        else if (*p == 'h') unit = 3600e9, p++;
        else return hl_err_set(err, HL_EINVAL, "invalid duration \"%s\": unknown unit (ns, us, ms, s, m, h)", s);
        total += v * unit;
        any = 1;
    }
    if (total > 9.2e18) total = 9.2e18;
    *ns = neg ? (total > 0 ? -1 : 0) : (int64_t)total;
    return 0;
}

int srv_parse_bytes(const char *s, int64_t *bytes, hl_err *err) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || v < 0) return hl_err_set(err, HL_EINVAL, "invalid size \"%s\" (use e.g. \"512MiB\", \"2GB\")", s);
    while (*end == ' ') end++;
    double m = 1;
    if (!*end || !strcasecmp(end, "b")) m = 1;
    else if (!strcasecmp(end, "k") || !strcasecmp(end, "kb")) m = 1e3;
    else if (!strcasecmp(end, "kib")) m = 1024.0;
    else if (!strcasecmp(end, "m") || !strcasecmp(end, "mb")) m = 1e6;
    else if (!strcasecmp(end, "mib")) m = 1048576.0;
    else if (!strcasecmp(end, "g") || !strcasecmp(end, "gb")) m = 1e9;
    else if (!strcasecmp(end, "gib")) m = 1073741824.0;
    else if (!strcasecmp(end, "tib")) m = 1099511627776.0;
    else return hl_err_set(err, HL_EINVAL, "invalid size \"%s\": unknown unit (B, KB, KiB, MB, MiB, GB, GiB)", s);
    double b = v * m;
    if (b > 9.0e18) return hl_err_set(err, HL_ERANGE, "size \"%s\" is too large", s);
    *bytes = (int64_t)b;
    return 0;
}

int srv_config_set_host(srv_config *c, const char *hp, hl_err *err) {
    const char *s = hp;
    if (!strncmp(s, "http://", 7)) s += 7;
    else if (!strncmp(s, "https://", 8)) return hl_err_set(err, HL_EINVAL, "host \"%s\": https is not served directly; put a TLS proxy in front", hp);
    char buf[300];
    snprintf(buf, sizeof buf, "%s", s);
    char *slash = strchr(buf, '/');
    if (slash) *slash = 0;
    char *host = buf, *port = NULL;
    if (buf[0] == '[') {
        char *rb = strchr(buf, ']');
        if (!rb) return hl_err_set(err, HL_EINVAL, "host \"%s\": missing ']'", hp);
        *rb = 0;
        host = buf + 1;
        if (rb[1] == ':') port = rb + 2;
    } else {
        char *colon = strrchr(buf, ':');
        if (colon && strchr(buf, ':') == colon) {
            *colon = 0;
            port = colon + 1;
        }
    }
    if (port) {
        char *end;
        long v = strtol(port, &end, 10);
        if (!*port || *end || v < 0 || v > 65535) return hl_err_set(err, HL_EINVAL, "host \"%s\": invalid port", hp);
        c->port = (int)v;
    }
    if (*host) snprintf(c->host, sizeof c->host, "%s", host);
    else snprintf(c->host, sizeof c->host, "0.0.0.0"); /* ":11434" means every interface, as in Ollama */
    return 0;
}

static int set_str(char **dst, const char *v) {
    free(*dst);
    *dst = (v && *v) ? strdup(v) : NULL;
    return 0;
}

static int add_origins_csv(srv_config *c, const char *csv, hl_err *err) {
    const char *p = csv;
    while (*p) {
        const char *q = strchr(p, ',');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        while (n && isspace((unsigned char)*p)) p++, n--;
        while (n && isspace((unsigned char)p[n - 1])) n--;
        if (n) {
            if (c->n_origins >= SRV_MAX_ORIGINS) return hl_err_set(err, HL_ERANGE, "more than %d CORS origins", SRV_MAX_ORIGINS);
            c->origins[c->n_origins++] = strndup(p, n);
        }
        p = q ? q + 1 : p + strlen(p);
    }
    return 0;
}

/* ---- the file ------------------------------------------------------------ */

typedef enum { K_STR, K_INT, K_BOOL, K_DUR, K_BYTES, K_ORIGINS, K_FRACTION } kind;
typedef struct key_def {
    const char *key;
    kind k;
    size_t off; /* offset into srv_config */
    int64_t lo, hi;
} key_def;

#define OFF(f) offsetof(srv_config, f)
static const key_def KEYS[] = {
    {"server.host", K_STR, OFF(host), 0, 0},
    {"server.port", K_INT, OFF(port), 0, 65535},
    {"server.origins", K_ORIGINS, 0, 0, 0},
    {"server.api_key", K_STR, OFF(api_key), 0, 0},
    {"server.http_threads", K_INT, OFF(http_threads), 1, 64},
    {"server.max_body", K_BYTES, OFF(max_body_bytes), 1024, 1ll << 32},
    {"server.max_upload", K_BYTES, OFF(max_upload_bytes), 1024, 1ll << 50},
    {"server.request_timeout", K_INT, OFF(request_timeout_s), 1, 86400},
    {"server.grace_period", K_INT, OFF(grace_s), 0, 3600},
    {"server.log_format", K_STR, OFF(log_json), 0, 0},
    {"server.strict_requests", K_BOOL, OFF(strict_requests), 0, 1},
    {"models.dir", K_STR, OFF(models_dir), 0, 0},
    {"models.max_loaded", K_INT, OFF(max_loaded), 1, 64},
    {"models.keep_alive", K_DUR, OFF(keep_alive_ns), 0, 0},
    {"engine.threads", K_INT, OFF(threads), 0, 1024},
    {"engine.kv_budget", K_BYTES, OFF(kv_bytes), 0, 1ll << 50},
    {"engine.num_ctx", K_INT, OFF(num_ctx), 0, 1 << 24},
    {"engine.max_seqs", K_INT, OFF(max_seqs), 1, 1024},
    {"engine.max_queue", K_INT, OFF(max_queue), 1, 1 << 20},
    {"engine.block_size", K_INT, OFF(block_size), 1, 1024},
    {"engine.step_tokens", K_INT, OFF(step_tokens), 16, 1 << 20},
    {"engine.prefix_cache", K_BOOL, OFF(prefix_cache), 0, 1},
    {"engine.kv_cache_type", K_STR, OFF(kv_type), 0, 0},
    {"engine.backend", K_STR, OFF(backend), 0, 0},
    {"engine.vulkan_device", K_INT, OFF(vulkan_device), -1, 64},
    {"engine.gpu_memory_fraction", K_FRACTION, OFF(gpu_memory_fraction), 0, 1},
    {"engine.speculative", K_BOOL, OFF(speculative), 0, 1},
    {"engine.num_draft", K_INT, OFF(num_draft), 1, 32},
    {"engine.draft_model", K_STR, OFF(draft_model), 0, 0},
};

static int type_err(const char *path, const srv_toml_kv *kv, const char *want, hl_err *err) {
    return hl_err_set(err, HL_EINVAL, "%s:%d:%d: %s must be %s, not %s", path, kv->v.line, kv->v.col, kv->key, want,
                      srv_toml_type_name(kv->v.type));
}

static int apply_kv(srv_config *c, const char *path, const srv_toml_kv *kv, hl_err *err) {
    const key_def *d = NULL;
    for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0]; i++)
        if (!strcmp(KEYS[i].key, kv->key)) d = &KEYS[i];
    if (!d) return hl_err_set(err, HL_EINVAL, "%s:%d:%d: unknown setting '%s'", path, kv->v.line, kv->v.col, kv->key);
    char *base = (char *)c;
    const srv_toml_val *v = &kv->v;
    hl_err e2;
    switch (d->k) {
    case K_STR:
        if (v->type != SRV_TOML_STR) return type_err(path, kv, "a string", err);
        if (!strcmp(d->key, "server.host")) {
            if (strlen(v->s) >= sizeof c->host) return hl_err_set(err, HL_EINVAL, "%s:%d:%d: host too long", path, v->line, v->col);
            snprintf(c->host, sizeof c->host, "%s", v->s);
        } else if (!strcmp(d->key, "server.log_format")) {
            if (strcmp(v->s, "pretty") && strcmp(v->s, "json"))
                return hl_err_set(err, HL_EINVAL, "%s:%d:%d: log_format must be \"pretty\" or \"json\"", path, v->line, v->col);
            c->log_json = !strcmp(v->s, "json");
        } else if (!strcmp(d->key, "engine.backend")) {
            if (!hl_backend_name_valid(v->s))
                return hl_err_set(err, HL_EINVAL, "%s:%d:%d: backend must be one of %s", path, v->line, v->col, hl_backend_names());
            snprintf(c->backend, sizeof c->backend, "%s", v->s);
        } else if (!strcmp(d->key, "engine.kv_cache_type")) {
            int t = hl_kv_type_from_name(v->s);
            if (t < 0)
                return hl_err_set(err, HL_EINVAL, "%s:%d:%d: kv_cache_type must be \"f16\" or \"q8_0\"", path, v->line, v->col);
            c->kv_type = t;
        } else {
            set_str((char **)(base + d->off), v->s);
        }
        return 0;
    case K_INT:
    case K_BOOL:
        if (d->k == K_BOOL && v->type != SRV_TOML_BOOL) return type_err(path, kv, "true or false", err);
        if (d->k == K_INT && v->type != SRV_TOML_INT) return type_err(path, kv, "an integer", err);
        if (v->i < d->lo || v->i > d->hi)
            return hl_err_set(err, HL_ERANGE, "%s:%d:%d: %s must be between %lld and %lld", path, v->line, v->col, kv->key,
                              (long long)d->lo, (long long)d->hi);
        *(int *)(base + d->off) = (int)v->i;
        return 0;
    case K_DUR: {
        int64_t ns;
        if (v->type == SRV_TOML_INT) ns = v->i < 0 ? -1 : v->i > 9000000000ll ? 9000000000ll * 1000000000ll : v->i * 1000000000ll;
        else if (v->type == SRV_TOML_STR) {
            if (srv_parse_duration(v->s, &ns, &e2)) return hl_err_set(err, HL_EINVAL, "%s:%d:%d: %s", path, v->line, v->col, e2.msg);
        } else return type_err(path, kv, "a duration string like \"5m\"", err);
        *(int64_t *)(base + d->off) = ns;
        return 0;
    }
    case K_BYTES: {
        int64_t b;
        if (v->type == SRV_TOML_INT) b = v->i;
        else if (v->type == SRV_TOML_STR) {
            if (srv_parse_bytes(v->s, &b, &e2)) return hl_err_set(err, HL_EINVAL, "%s:%d:%d: %s", path, v->line, v->col, e2.msg);
        } else return type_err(path, kv, "a size like \"512MiB\"", err);
        if (b < d->lo || b > d->hi)
            return hl_err_set(err, HL_ERANGE, "%s:%d:%d: %s must be between %lld and %lld bytes", path, v->line, v->col,
                              kv->key, (long long)d->lo, (long long)d->hi);
        *(int64_t *)(base + d->off) = b;
        return 0;
    }
    case K_FRACTION: {
        double x = v->type == SRV_TOML_FLOAT ? v->f : v->type == SRV_TOML_INT ? (double)v->i : -1;
        if (v->type != SRV_TOML_FLOAT && v->type != SRV_TOML_INT) return type_err(path, kv, "a number", err);
        if (!(x > 0 && x <= 1))
            return hl_err_set(err, HL_ERANGE, "%s:%d:%d: %s must be more than 0 and at most 1", path, v->line, v->col, kv->key);
        *(double *)(base + d->off) = x;
        return 0;
    }
    case K_ORIGINS:
        if (v->type != SRV_TOML_ARRAY) return type_err(path, kv, "an array of strings", err);
        for (size_t i = 0; i < v->n_items; i++) {
            if (v->items[i].type != SRV_TOML_STR)
                return hl_err_set(err, HL_EINVAL, "%s:%d:%d: origins must hold strings", path, v->items[i].line, v->items[i].col);
            if (add_origins_csv(c, v->items[i].s, err)) return HL_ERANGE;
        }
        return 0;
    }
    return 0;
}

int srv_config_load_file(srv_config *c, const char *path, int create, hl_err *err) {
    char *text = NULL;
    size_t n = 0;
    hl_err e2;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno != ENOENT) return hl_err_set(err, HL_EIO, "%s: %s", path, strerror(errno));
        if (!create) return 0;
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *sl = strrchr(dir, '/');
        if (sl) {
            *sl = 0;
            if (*dir && hl_mkdirs(dir, &e2)) return hl_err_set(err, HL_EIO, "creating %s: %s", dir, e2.msg);
        }
        if (hl_write_file_atomic(path, DEFAULT_TEXT, strlen(DEFAULT_TEXT), &e2))
            return hl_err_set(err, HL_EIO, "writing the default configuration: %s", e2.msg);
        set_str(&c->config_path, path);
        return 0;
    }
    fclose(f);
    int rc = hl_read_file(path, SRV_TOML_MAX_BYTES, &text, &n, err);
    if (rc) return rc;
    srv_toml t;
    rc = srv_toml_parse(text, n, path, &t, err);
    free(text);
    if (rc) return rc;
    for (size_t i = 0; i < t.n && !rc; i++) rc = apply_kv(c, path, &t.kvs[i], err);
    srv_toml_free(&t);
    if (!rc) set_str(&c->config_path, path);
    return rc;
}

static int env_int(const char *name, int *dst, int lo, int hi, hl_err *err) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (*end || errno || x < lo || x > hi) return hl_err_set(err, HL_EINVAL, "%s=\"%s\": expected an integer between %d and %d", name, v, lo, hi);
    *dst = (int)x;
    return 0;
}

int srv_config_apply_env(srv_config *c, hl_err *err) {
    const char *v;
    hl_err e2;
    if ((v = getenv("HYPERLAMA_HOST")) && *v && srv_config_set_host(c, v, &e2))
        return hl_err_set(err, HL_EINVAL, "HYPERLAMA_HOST: %s", e2.msg);
    if ((v = getenv("HYPERLAMA_ORIGINS")) && *v && add_origins_csv(c, v, err)) return HL_ERANGE;
    if ((v = getenv("HYPERLAMA_API_KEY")) && *v) set_str(&c->api_key, v);
    if ((v = getenv("HYPERLAMA_DRAFT_MODEL"))) set_str(&c->draft_model, v);
    if ((v = getenv("HYPERLAMA_MODELS")) && *v) set_str(&c->models_dir, v);
    if ((v = getenv("HYPERLAMA_KEEP_ALIVE")) && *v && srv_parse_duration(v, &c->keep_alive_ns, &e2))
        return hl_err_set(err, HL_EINVAL, "HYPERLAMA_KEEP_ALIVE: %s", e2.msg);
    if ((v = getenv("HYPERLAMA_KV_BUDGET")) && *v && srv_parse_bytes(v, &c->kv_bytes, &e2))
        return hl_err_set(err, HL_EINVAL, "HYPERLAMA_KV_BUDGET: %s", e2.msg);
    if ((v = getenv("HYPERLAMA_LOG_FORMAT")) && *v) {
        if (strcmp(v, "json") && strcmp(v, "pretty")) return hl_err_set(err, HL_EINVAL, "HYPERLAMA_LOG_FORMAT must be pretty or json");
        c->log_json = !strcmp(v, "json");
    }
    if ((v = getenv("HYPERLAMA_STRICT_REQUESTS")) && *v) {
        if (!strcmp(v, "1") || !strcmp(v, "true")) c->strict_requests = 1;
        else if (!strcmp(v, "0") || !strcmp(v, "false")) c->strict_requests = 0;
        else return hl_err_set(err, HL_EINVAL, "HYPERLAMA_STRICT_REQUESTS=\"%s\": expected true or false", v);
    }
    if ((v = getenv("HYPERLAMA_BACKEND")) && *v) {
        if (!hl_backend_name_valid(v))
            return hl_err_set(err, HL_EINVAL, "HYPERLAMA_BACKEND=\"%s\": expected one of %s", v, hl_backend_names());
        snprintf(c->backend, sizeof c->backend, "%s", v);
    }
    if ((v = getenv("HYPERLAMA_KV_CACHE_TYPE")) && *v) {
        int t = hl_kv_type_from_name(v);
        if (t < 0) return hl_err_set(err, HL_EINVAL, "HYPERLAMA_KV_CACHE_TYPE=\"%s\": expected f16 or q8_0", v);
        c->kv_type = t;
    }
    if ((v = getenv("HYPERLAMA_GPU_MEMORY_FRACTION")) && *v) {
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        if (*end || errno || !(x > 0 && x <= 1))
            return hl_err_set(err, HL_EINVAL, "HYPERLAMA_GPU_MEMORY_FRACTION=\"%s\": expected a number more than 0 and at most 1", v);
        c->gpu_memory_fraction = x;
    }
    int rc = env_int("HYPERLAMA_MAX_LOADED_MODELS", &c->max_loaded, 1, 64, err);
    if (!rc) rc = env_int("HYPERLAMA_VULKAN_DEVICE", &c->vulkan_device, -1, 64, err);
    if (!rc) rc = env_int("HYPERLAMA_NUM_PARALLEL", &c->max_seqs, 1, 1024, err);
    if (!rc) rc = env_int("HYPERLAMA_MAX_QUEUE", &c->max_queue, 1, 1 << 20, err);
    if (!rc) rc = env_int("HYPERLAMA_CONTEXT_LENGTH", &c->num_ctx, 0, 1 << 24, err);
    if (!rc) rc = env_int("HYPERLAMA_NUM_THREADS", &c->threads, 0, 1024, err);
    if (!rc) rc = env_int("HYPERLAMA_SPECULATIVE", &c->speculative, 0, 1, err);
    return rc;
}

int srv_config_validate(const srv_config *c, hl_err *err) {
    if (!c->host[0]) return hl_err_set(err, HL_EINVAL, "host is empty");
    if (c->port < 0 || c->port > 65535) return hl_err_set(err, HL_EINVAL, "port %d is out of range", c->port);
    if (c->max_loaded < 1) return hl_err_set(err, HL_EINVAL, "max_loaded must be at least 1");
    if (c->max_seqs < 1 || c->max_queue < 1) return hl_err_set(err, HL_EINVAL, "max_seqs and max_queue must be at least 1");
    if (c->http_threads < 1) return hl_err_set(err, HL_EINVAL, "http_threads must be at least 1");
    if (c->api_key && strlen(c->api_key) < 8) return hl_err_set(err, HL_EINVAL, "api_key is shorter than 8 characters: use a longer random key");
    return 0;
}

static void put_tstr(hl_buf *b, const char *k, const char *v) {
    hl_buf_printf(b, "%s = \"", k);
    for (const char *p = v ? v : ""; *p; p++) {
        if (*p == '"' || *p == '\\') hl_buf_putc(b, '\\');
        hl_buf_putc(b, *p);
    }
    hl_buf_puts(b, "\"\n");
}

void srv_config_print(const srv_config *c, hl_buf *b) {
    hl_buf_printf(b, "# effective configuration (file: %s)\n[server]\n", c->config_path ? c->config_path : "none");
    put_tstr(b, "host", c->host);
    hl_buf_printf(b, "port = %d\norigins = [", c->port);
    for (int i = 0; i < c->n_origins; i++) {
        if (i) hl_buf_puts(b, ", ");
        hl_buf_printf(b, "\"%s\"", c->origins[i]);
    }
    hl_buf_puts(b, "]\n");
    put_tstr(b, "api_key", c->api_key ? "(set)" : "");
    hl_buf_printf(b, "http_threads = %d\nmax_body = %lld\nmax_upload = %lld\nrequest_timeout = %d\ngrace_period = %d\n",
                  c->http_threads, (long long)c->max_body_bytes, (long long)c->max_upload_bytes, c->request_timeout_s,
                  c->grace_s);
    put_tstr(b, "log_format", c->log_json ? "json" : "pretty");
    hl_buf_printf(b, "strict_requests = %s\n", c->strict_requests ? "true" : "false");
    hl_buf_puts(b, "\n[models]\n");
    put_tstr(b, "dir", c->models_dir ? c->models_dir : "");
    hl_buf_printf(b, "max_loaded = %d\n", c->max_loaded);
    if (c->keep_alive_ns < 0) put_tstr(b, "keep_alive", "-1");
    else hl_buf_printf(b, "keep_alive = \"%llds\"\n", (long long)(c->keep_alive_ns / 1000000000ll));
    hl_buf_printf(b, "\n[engine]\nthreads = %d\nkv_budget = %lld\nnum_ctx = %d\nmax_seqs = %d\nmax_queue = %d\n"
                     "block_size = %d\nstep_tokens = %d\nprefix_cache = %s\n",
                  c->threads, (long long)c->kv_bytes, c->num_ctx, c->max_seqs, c->max_queue, c->block_size, c->step_tokens,
                  c->prefix_cache ? "true" : "false");
    put_tstr(b, "kv_cache_type", c->kv_type == HL_TYPE_Q8_0 ? "q8_0" : "f16");
    put_tstr(b, "backend", c->backend);
    hl_buf_printf(b, "vulkan_device = %d\ngpu_memory_fraction = %g\n", c->vulkan_device, c->gpu_memory_fraction);
    hl_buf_printf(b, "speculative = %s\nnum_draft = %d\n", c->speculative ? "true" : "false", c->num_draft);
    put_tstr(b, "draft_model", c->draft_model ? c->draft_model : "");
}
