/* The HTTP server behind `hyperlama serve`: the Ollama REST API and the
 * OpenAI-compatible API over libmicrohttpd (epoll + a small thread pool),
 * serving models through one continuous-batching engine per loaded model.
 *
 * Lifecycle: fill an srv_config (defaults < config file < environment <
 * flags), srv_new, srv_start; on SIGINT/SIGTERM the program calls
 * srv_shutdown, which stops accepting, lets running requests finish within the
 * grace period, cancels the rest and unloads every model; then srv_free.
 *
 * Streaming never blocks a thread: a streamed response's content reader takes
 * whatever token events are ready and, when none are, suspends its connection;
 * the engine's notify callback resumes it. A client that goes away is noticed
 * at the next write and its request cancelled, which frees its KV blocks. */
#ifndef HL_SERVER_H
#define HL_SERVER_H

#include "base/buf.h"
#include "base/err.h"

#include <stddef.h>
#include <stdint.h>

/* ---- configuration (config.c) ------------------------------------------- */

#define SRV_MAX_ORIGINS 32

typedef struct srv_config {
    /* [server] */
    char host[256];          /* default 127.0.0.1 */
    int port;                /* default 11434 */
    char *origins[SRV_MAX_ORIGINS]; /* extra allowed CORS origins (besides localhost ones) */
    int n_origins;
    char *api_key;           /* NULL: no key required */
    int http_threads;        /* default 4 */
    int64_t max_body_bytes;  /* JSON request bodies; default 16 MiB */
    int64_t max_upload_bytes;/* POST /api/blobs; default 64 GiB */
    int request_timeout_s;   /* idle connection timeout; default 600 */
    int grace_s;             /* shutdown grace period; default 10 */
    int log_json;            /* log format: 0 pretty, 1 json */
    int strict_requests;     /* /v1: unknown fields are a 400 (default: ignored, as Ollama and vLLM) */
    /* [models] */
    char *models_dir;        /* NULL: the store's default */
    int max_loaded;          /* models loaded at once; default 3 */
    int64_t keep_alive_ns;   /* default 5m; < 0 forever */
    /* [engine] */
    int threads;             /* compute threads per engine; 0 = all cores */
    int64_t kv_bytes;        /* KV budget per model; 0 = min(2 GiB, 25% of MemAvailable) */
    int num_ctx;             /* default context per request; 0 = the model's (capped by the pool) */
    int max_seqs;            /* sequences decoding at once; default 16 */
    int max_queue;           /* waiting requests before 503; default 64 */
    int block_size;          /* KV block tokens; default 16 */
    int step_tokens;         /* tokens per scheduler step; default 512 */
    int prefix_cache;        /* default on */
    int kv_type;             /* KV cache element type (hl_type): F16 (default) or Q8_0 */
    char backend[16];        /* engine.backend: "auto" (default), "cpu", "ref", "vulkan", "vulkan:N" */
    int vulkan_device;       /* engine.vulkan_device / HYPERLAMA_VULKAN_DEVICE: the device auto/vulkan take; -1 (default): the GPU with the most memory */
    double gpu_memory_fraction; /* engine.gpu_memory_fraction: share of the free GPU memory models may take; default 0.9 */
    int speculative;         /* engine.speculative: prompt-lookup drafts for requests by default; default on */
    int num_draft;           /* engine.num_draft: most drafted tokens per sequence and step; default 8 */
    char *draft_model;       /* engine.draft_model: a draft model for every compatible model; NULL: none */
    char version[32];        /* reported by /api/version */
    /* where the values came from, for --print-config */
    char *config_path;
} srv_config;

void srv_config_defaults(srv_config *c);
void srv_config_free(srv_config *c);
/* The config file path: $HYPERLAMA_CONFIG or ~/.hyperlama/config.toml. Caller frees. */
char *srv_config_default_path(void);
/* Reads the file when it exists; when it does not and create is set, writes
 * the commented defaults there first. Unknown keys and wrong types are errors
 * with file:line:col. */
int srv_config_load_file(srv_config *c, const char *path, int create, hl_err *err);
/* HYPERLAMA_HOST (host[:port] or a URL), HYPERLAMA_ORIGINS, HYPERLAMA_API_KEY,
 * HYPERLAMA_MODELS, HYPERLAMA_MAX_LOADED_MODELS, HYPERLAMA_KEEP_ALIVE,
 * HYPERLAMA_KV_BUDGET, HYPERLAMA_NUM_PARALLEL, HYPERLAMA_MAX_QUEUE,
 * HYPERLAMA_CONTEXT_LENGTH, HYPERLAMA_NUM_THREADS, HYPERLAMA_LOG_FORMAT,
 * HYPERLAMA_BACKEND, HYPERLAMA_VULKAN_DEVICE, HYPERLAMA_GPU_MEMORY_FRACTION. */
int srv_config_apply_env(srv_config *c, hl_err *err);
/* host[:port], [v6]:port, or http://host:port. */
int srv_config_set_host(srv_config *c, const char *hostport, hl_err *err);
int srv_config_validate(const srv_config *c, hl_err *err);
/* The effective configuration as TOML (what --print-config prints). */
void srv_config_print(const srv_config *c, hl_buf *out);
/* The commented defaults written on first start. */
const char *srv_config_default_text(void);

/* Go-style durations ("5m", "1h30m", "250ms", "-1", "0"); a bare number is
 * seconds. Negative means forever (returned as -1). */
int srv_parse_duration(const char *s, int64_t *ns, hl_err *err);
/* "256MiB", "2GB", "1048576" → bytes. */
int srv_parse_bytes(const char *s, int64_t *bytes, hl_err *err);

/* ---- the server ----------------------------------------------------------- */

typedef struct srv_server srv_server;

int srv_new(srv_server **out, const srv_config *c, hl_err *err); /* c is copied */
int srv_start(srv_server *s, hl_err *err);                       /* binds and listens */
/* The port actually bound (useful with port 0). */
int srv_port(const srv_server *s);
/* Stops accepting, waits up to grace_s for running requests, cancels the rest. */
void srv_shutdown(srv_server *s);
void srv_free(srv_server *s);

#endif
