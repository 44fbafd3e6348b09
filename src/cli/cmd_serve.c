/* `hyperlama serve`: reads the configuration (defaults < config file <
 * environment < flags), prints the hardware, the models directory and the
 * address, runs the HTTP server until SIGINT/SIGTERM, then shuts down
 * gracefully (running requests get the grace period to finish). */
#include "cli/cli.h"
#include "backend/cpu/cpu.h"
#include "base/log.h"
#include "server/server.h"
#include "store/store.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void serve_help(FILE *out) {
    fprintf(out, "Start the HyperLlama server (Ollama and OpenAI APIs)\n\n"
                 "Usage:\n  hyperlama serve [flags]\n\n"
                 "Flags:\n"
                 "      --host ADDR          listen address, host[:port] (default 127.0.0.1; env HYPERLAMA_HOST)\n"
                 "      --port N             listen port (default 11434)\n"
                 "      --config PATH        configuration file (default ~/.hyperlama/config.toml; env HYPERLAMA_CONFIG)\n"
                 "      --models DIR         model store (env HYPERLAMA_MODELS)\n"
                 "      --api-key KEY        require \"Authorization: Bearer KEY\" (env HYPERLAMA_API_KEY)\n"
                 "      --keep-alive DUR     how long idle models stay loaded (default 5m)\n"
                 "      --max-loaded N       models loaded at once (default 3)\n"
                 "      --kv-budget SIZE     KV-cache memory per model, e.g. 512MiB (default: min(2 GiB, 25%% of free))\n"
                 "      --parallel N         sequences decoding at once (default 16)\n"
                 "      --max-queue N        waiting requests before 503 (default 64)\n"
                 "      --num-ctx N          default context per request (default: the model's)\n"
                 "  -t, --threads N          compute threads (default: all cores)\n"
                 "      --log-format FMT     pretty | json\n"
                 "      --print-config       print the effective configuration and exit\n"
                 "  -h, --help               help for serve\n\n"
                 "Environment: HYPERLAMA_HOST, HYPERLAMA_ORIGINS, HYPERLAMA_API_KEY, HYPERLAMA_MODELS,\n"
                 "HYPERLAMA_MAX_LOADED_MODELS, HYPERLAMA_KEEP_ALIVE, HYPERLAMA_KV_BUDGET, HYPERLAMA_NUM_PARALLEL,\n"
                 "HYPERLAMA_MAX_QUEUE, HYPERLAMA_CONTEXT_LENGTH, HYPERLAMA_NUM_THREADS, HYPERLAMA_LOG_FORMAT.\n");
}

static int is_loopback(const char *h) {
    return !strcmp(h, "127.0.0.1") || !strncmp(h, "127.", 4) || !strcmp(h, "::1") || !strcmp(h, "localhost");
}

static void print_hardware(const srv_config *c) {
    hl_cpu_info ci;
    hl_cpu_detect(&ci);
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGE_SIZE);
    long long avail_kb = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) avail_kb = kb;
        fclose(f);
    }
    hl_info("CPU: %s, %d cores, SIMD %s", ci.model[0] ? ci.model : "unknown", ci.n_cores, hl_cpu_simd_level());
    hl_info("memory: %.1f GiB total, %.1f GiB available", (double)pages * (double)psz / 1073741824.0, (double)avail_kb / 1048576.0);
    /* the GPU, and which backend the models use, are logged when the backend opens (server/models.c) */
    (void)c;
}

int cmd_serve(int argc, char **argv) {
    srv_config c;
    srv_config_defaults(&c);
    hl_err err = {0};
    const char *config_path = NULL, *host = NULL, *port = NULL, *models = NULL, *api_key = NULL, *keep_alive = NULL,
               *max_loaded = NULL, *kv = NULL, *parallel = NULL, *max_queue = NULL, *num_ctx = NULL, *threads = NULL,
               *log_format = NULL;
    int print_config = 0;
    for (int i = 0; i < argc; i++) {
        int bad = 0;
        const char *v;
#define FLAG(name, var) \
    if ((v = cli_flag_value(name, argc, argv, &i, &bad)) || bad) { \
        if (bad) { fprintf(stderr, "Error: flag needs an argument: %s\n", name); srv_config_free(&c); return 2; } \
        var = v; continue; }
        FLAG("--config", config_path)
        FLAG("--host", host)
        FLAG("--port", port)
        FLAG("--models", models)
        FLAG("--api-key", api_key)
        FLAG("--keep-alive", keep_alive)
        FLAG("--max-loaded", max_loaded)
        FLAG("--kv-budget", kv)
        FLAG("--parallel", parallel)
        FLAG("--max-queue", max_queue)
        FLAG("--num-ctx", num_ctx)
        FLAG("--threads", threads)
        FLAG("-t", threads)
        FLAG("--log-format", log_format)
#undef FLAG
        if (!strcmp(argv[i], "--print-config")) print_config = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            serve_help(stdout);
            srv_config_free(&c);
            return 0;
        } else {
            fprintf(stderr, "Error: unknown flag: %s\n", argv[i]);
            serve_help(stderr);
            srv_config_free(&c);
            return 2;
        }
    }
    snprintf(c.version, sizeof c.version, "%s", HL_VERSION);
    char *path = config_path ? strdup(config_path) : srv_config_default_path();
    int rc = path ? srv_config_load_file(&c, path, !print_config, &err) : 0;
    free(path);
    if (!rc) rc = srv_config_apply_env(&c, &err);
    /* flags last: they win */
    if (!rc && host) rc = srv_config_set_host(&c, host, &err);
    if (!rc && port) {
        char *end;
        long p = strtol(port, &end, 10);
        if (!*port || *end || p < 0 || p > 65535) rc = hl_err_set(&err, HL_EINVAL, "--port %s: expected 0..65535", port);
        else c.port = (int)p;
    }
    if (!rc && models) {
        free(c.models_dir);
        c.models_dir = strdup(models);
    }
    if (!rc && api_key) {
        free(c.api_key);
        c.api_key = strdup(api_key);
    }
    if (!rc && keep_alive) rc = srv_parse_duration(keep_alive, &c.keep_alive_ns, &err);
    if (!rc && kv) rc = srv_parse_bytes(kv, &c.kv_bytes, &err);
    if (!rc && log_format) {
        if (strcmp(log_format, "json") && strcmp(log_format, "pretty")) rc = hl_err_set(&err, HL_EINVAL, "--log-format must be pretty or json");
        else c.log_json = !strcmp(log_format, "json");
    }
    const char *ints[][2] = {{"--max-loaded", max_loaded}, {"--parallel", parallel}, {"--max-queue", max_queue},
                             {"--num-ctx", num_ctx}, {"--threads", threads}};
    int *dst[] = {&c.max_loaded, &c.max_seqs, &c.max_queue, &c.num_ctx, &c.threads};
    for (int k = 0; k < 5 && !rc; k++) {
        if (!ints[k][1]) continue;
        char *end;
        long x = strtol(ints[k][1], &end, 10);
        if (!*ints[k][1] || *end || x < 0 || x > (1 << 24)) rc = hl_err_set(&err, HL_EINVAL, "%s %s: expected a non-negative integer", ints[k][0], ints[k][1]);
        else *dst[k] = (int)x;
    }
    if (!rc) rc = srv_config_validate(&c, &err);
    if (rc) {
        fprintf(stderr, "Error: %s\n", err.msg);
        srv_config_free(&c);
        return 1;
    }
    if (print_config) {
        hl_buf b = {0};
        srv_config_print(&c, &b);
        fputs(b.data ? b.data : "", stdout);
        hl_buf_free(&b);
        srv_config_free(&c);
        return 0;
    }
    hl_log_set_json(c.log_json);
    if (!is_loopback(c.host) && !c.api_key)
        hl_warn("WARNING: listening on %s without an API key: anyone who can reach this address can use the server. "
                "Set HYPERLAMA_API_KEY (or --api-key) or bind 127.0.0.1.", c.host);

    /* signals are taken synchronously by this thread; every other thread inherits the mask */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    print_hardware(&c);
    srv_server *s = NULL;
    rc = srv_new(&s, &c, &err);
    if (!rc) rc = srv_start(s, &err);
    if (rc) {
        fprintf(stderr, "Error: %s\n", err.msg);
        srv_free(s);
        srv_config_free(&c);
        return 1;
    }
    store *st = NULL;
    if (store_open(&st, c.models_dir, NULL) == 0) {
        hl_info("models: %s", store_root(st));
        store_close(st);
    }
    hl_info("Listening on %s%s%s:%d (version %s)", strchr(c.host, ':') ? "[" : "", c.host, strchr(c.host, ':') ? "]" : "",
            srv_port(s), HL_VERSION);
    int sig = 0;
    sigwait(&set, &sig);
    hl_info("received %s: shutting down (grace period %ds)", sig == SIGINT ? "SIGINT" : "SIGTERM", c.grace_s);
    srv_shutdown(s);
    srv_free(s);
    srv_config_free(&c);
    hl_info("stopped");
    return 0;
}
