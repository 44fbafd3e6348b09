/* Command-line option parsing shared by the verbs: sampling flags, limits,
 * threads and context size. */
#include "cli/cli.h"
#include "base/log.h"
#include "backend/kv.h"
#include "model/model.h"

#include <errno.h>
#include <json-c/json.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void cli_gen_opts_default(cli_gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->sampling = hl_sampling_default_params();
    o->num_predict = -1;
    o->speculative = 1;
    o->engine = (cli_engine_opts){.num_ctx = 0, .n_threads = 0, .n_batch = 512, .kv_type = HL_TYPE_F16, .prefix_cache = 1,
                                  .num_gpu = -1, .vulkan_device = -1, .gpu_memory_fraction = HL_GPU_MEMORY_FRACTION_DEFAULT};
    /* the server's GPU variables set in-process engines too (server/config.c reads them for serve) */
    const char *dev = getenv("HYPERLAMA_VULKAN_DEVICE"), *frac = getenv("HYPERLAMA_GPU_MEMORY_FRACTION");
    if (dev && *dev) {
        char *end;
        long d = strtol(dev, &end, 10);
        if (*end || d < -1 || d > 64) hl_warn("ignoring HYPERLAMA_VULKAN_DEVICE=\"%s\" (expected a device index)", dev);
        else o->engine.vulkan_device = (int)d;
    }
    if (frac && *frac) {
        char *end;
        double f = strtod(frac, &end);
        if (*end || !(f > 0 && f <= 1)) hl_warn("ignoring HYPERLAMA_GPU_MEMORY_FRACTION=\"%s\" (expected 0 < f <= 1)", frac);
        else o->engine.gpu_memory_fraction = f;
    }
    /* the server's variable also sets in-process engines; --kv-cache-type wins */
    const char *kvt = getenv("HYPERLAMA_KV_CACHE_TYPE");
    if (kvt && *kvt) {
        int t = hl_kv_type_from_name(kvt);
        if (t >= 0) o->engine.kv_type = (hl_type)t;
        else hl_warn("ignoring HYPERLAMA_KV_CACHE_TYPE=\"%s\" (expected f16 or q8_0)", kvt);
    }
}

const char *cli_flag_value(const char *name, int argc, char **argv, int *i, int *bad) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return NULL;
    if (a[n] == '=') return a + n + 1;
    if (a[n] != 0) return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "Error: %s needs a value\n", name);
        *bad = 1;
        return NULL;
    }
    return argv[++*i];
}

static int parse_float(const char *flag, const char *v, float *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end) {
        fprintf(stderr, "Error: %s expects a number, got '%s'\n", flag, v);
        return -1;
    }
    *out = (float)d;
    return 1;
}

static int parse_int(const char *flag, const char *v, long long min, long long max, long long *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < min || x > max) {
        fprintf(stderr, "Error: %s expects an integer in [%lld, %lld], got '%s'\n", flag, min, max, v);
        return -1;
    }
    *out = x;
    return 1;
}

int cli_parse_gen_opt_or_model(cli_gen_opts *o, int argc, char **argv, int *i, const char **model) {
    int r = cli_parse_gen_opt(o, argc, argv, i);
    if (r != 0) return r > 0 ? 0 : -1;
    const char *a = argv[*i];
    if (a[0] == '-' && a[1]) {
        cli_unknown_flag(a);
        return -1;
    }
    if (*model) {
        fprintf(stderr, "Error: unexpected argument '%s'\n", a);
        return -1;
    }
    *model = a;
    return 0;
}

int cli_parse_gen_opt(cli_gen_opts *o, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (strcmp(a, "--raw") == 0) return o->raw = 1, 1;
    if (strcmp(a, "--verbose") == 0) return o->verbose = 1, 1;
    if (strcmp(a, "--hidethinking") == 0) return o->hide_thinking = 1, 1;
    if (strcmp(a, "--think") == 0) return o->think_set = o->think = 1, 1;
    if (strncmp(a, "--think=", 8) == 0) {
        const char *v = a + 8;
        o->think_set = 1;
        o->think = strcmp(v, "false") != 0;
        o->think_level = NULL;
        if (!strcmp(v, "low") || !strcmp(v, "medium") || !strcmp(v, "high")) o->think_level = v;
        else if (strcmp(v, "true") && strcmp(v, "false")) {
            fprintf(stderr, "Error: --think expects true, false, low, medium or high, got '%s'\n", v);
            return -1;
        }
        return 1;
    }
    static const struct {
        const char *flag;
        int kind; /* 0 float, 1 int */
        size_t off;
        long long min, max;
    } table[] = {
        {"--temperature", 0, offsetof(hl_sampling_params, temperature), 0, 0},
        {"--top-p", 0, offsetof(hl_sampling_params, top_p), 0, 0},
        {"--min-p", 0, offsetof(hl_sampling_params, min_p), 0, 0},
        {"--typical-p", 0, offsetof(hl_sampling_params, typical_p), 0, 0},
        {"--repeat-penalty", 0, offsetof(hl_sampling_params, repeat_penalty), 0, 0},
        {"--presence-penalty", 0, offsetof(hl_sampling_params, presence_penalty), 0, 0},
        {"--frequency-penalty", 0, offsetof(hl_sampling_params, frequency_penalty), 0, 0},
        {"--top-k", 1, offsetof(hl_sampling_params, top_k), -1, 1 << 30},
        {"--repeat-last-n", 1, offsetof(hl_sampling_params, repeat_last_n), -1, 1 << 20},
    };
    int bad = 0;
    for (size_t t = 0; t < sizeof table / sizeof table[0]; t++) {
        const char *v = cli_flag_value(table[t].flag, argc, argv, i, &bad);
        if (bad) return -1;
        if (!v) continue;
        char *field = (char *)&o->sampling + table[t].off;
        if (table[t].kind == 0) return parse_float(table[t].flag, v, (float *)field);
        long long x;
        if (parse_int(table[t].flag, v, table[t].min, table[t].max, &x) < 0) return -1;
        *(int32_t *)field = (int32_t)x;
        return 1;
    }
    const char *v;
    long long x;
    if ((v = cli_flag_value("--seed", argc, argv, i, &bad))) {
        if (parse_int("--seed", v, -1, INT64_MAX, &x) < 0) return -1;
        o->sampling.has_seed = x >= 0;
        o->sampling.seed = (uint64_t)x;
        return 1;
    }
    if ((v = cli_flag_value("--num-predict", argc, argv, i, &bad))) {
        if (parse_int("--num-predict", v, -2, 1 << 30, &x) < 0) return -1;
        o->num_predict = x < 0 ? -1 : (int32_t)x;
        return 1;
    }
    if ((v = cli_flag_value("--num-ctx", argc, argv, i, &bad))) {
        if (parse_int("--num-ctx", v, 16, 1 << 24, &x) < 0) return -1;
        o->engine.num_ctx = (int32_t)x;
        return 1;
    }
    if ((v = cli_flag_value("--threads", argc, argv, i, &bad))) {
        if (parse_int("--threads", v, 1, 1024, &x) < 0) return -1;
        o->engine.n_threads = (int32_t)x;
        return 1;
    }
    if ((v = cli_flag_value("--num-gpu", argc, argv, i, &bad))) {
        if (parse_int("--num-gpu", v, -1, 1 << 20, &x) < 0) return -1;
        o->engine.num_gpu = (int32_t)x;
        return 1;
    }
    if ((v = cli_flag_value("--backend", argc, argv, i, &bad))) {
        if (!hl_backend_name_valid(v)) {
            fprintf(stderr, "Error: --backend must be one of %s (got \"%s\")\n", hl_backend_names(), v);
            return -1;
        }
        o->engine.backend = v;
        return 1;
    }
    if ((v = cli_flag_value("--kv-cache-type", argc, argv, i, &bad))) {
        int t = hl_kv_type_from_name(v);
        if (t < 0) {
            fprintf(stderr, "Error: --kv-cache-type must be f16 or q8_0 (got \"%s\")\n", v);
            return -1;
        }
        o->engine.kv_type = (hl_type)t;
        return 1;
    }
    if ((v = cli_flag_value("--num-draft", argc, argv, i, &bad))) {
        if (parse_int("--num-draft", v, 0, 32, &x) < 0) return -1;
        o->num_draft = (int32_t)x;
        o->speculative = x > 0;
        return 1;
    }
    if ((v = cli_flag_value("--draft-model", argc, argv, i, &bad))) {
        o->draft_model = v;
        return 1;
    }
    if ((v = cli_flag_value("--speculative", argc, argv, i, &bad))) {
        if (strcmp(v, "true") && strcmp(v, "false")) {
            fprintf(stderr, "Error: --speculative expects true or false, got '%s'\n", v);
            return -1;
        }
        o->speculative = v[0] == 't';
        return 1;
    }
    if ((v = cli_flag_value("--batch-size", argc, argv, i, &bad))) {
        if (parse_int("--batch-size", v, 1, 1 << 16, &x) < 0) return -1;
        o->engine.n_batch = (int32_t)x;
        return 1;
    }
    if ((v = cli_flag_value("--stop", argc, argv, i, &bad))) {
        if (o->n_stops >= HL_CLI_MAX_STOPS) {
            fprintf(stderr, "Error: at most %d --stop strings\n", HL_CLI_MAX_STOPS);
            return -1;
        }
        o->stops[o->n_stops++] = v;
        return 1;
    }
    if ((v = cli_flag_value("--system", argc, argv, i, &bad))) {
        o->system = v;
        return 1;
    }
    if ((v = cli_flag_value("--format", argc, argv, i, &bad))) {
        char *j = NULL;
        hl_err err = {0};
        if (cli_format_json(v, &j, &err)) {
            fprintf(stderr, "Error: %s\n", err.msg);
            return -1;
        }
        free(j);
        o->format = v;
        return 1;
    }
    return bad ? -1 : 0;
}

void cli_print_gen_opts_help(FILE *out) {
    fprintf(out,
            "Generation flags:\n"
            "  --raw                     send the prompt as is (no chat template)\n"
            "  --verbose                 print timings (prompt eval and eval rates)\n"
            "  --think[=VALUE]           thinking on (true, low, medium, high) or off (false)\n"
            "  --hidethinking            do not print the thinking\n"
            "  --system TEXT             system message\n"
            "  --format FORMAT           the answer's format: json, or a JSON Schema (inline\n"
            "                            or @FILE), enforced by the grammar\n"
            "  --num-predict N           maximum tokens to generate (-1: until done)\n"
            "  --stop TEXT               stop when TEXT is generated (repeatable)\n"
            "  --temperature F           0 = greedy (default 0.8)\n"
            "  --top-k N                 (default 40; 0 = off)\n"
            "  --top-p F                 (default 0.9; 1 = off)\n"
            "  --min-p F                 (default 0; 0 = off)\n"
            "  --typical-p F             (default 1 = off)\n"
            "  --repeat-penalty F        (default 1.1)\n"
            "  --repeat-last-n N         (default 64; -1 = whole context)\n"
            "  --presence-penalty F      (default 0)\n"
            "  --frequency-penalty F     (default 0)\n"
            "  --seed N                  fixed seed: same seed, same output\n"
            "  --num-ctx N               context window (default 4096)\n"
            "  --threads N               CPU threads (default: all cores)\n"
            "  --num-gpu N               layers on the GPU, the last ones and the output (default:\n"
            "                            all; 0: none; the rest run on the CPU)\n"
            "  --batch-size N            prompt tokens per step (default 512)\n"
            "  --speculative BOOL        prompt-lookup speculative decoding (default true)\n"
            "  --num-draft N             most drafted tokens per step (default 8; 0: off)\n"
            "  --draft-model NAME        a draft model (same vocabulary) instead of prompt lookup\n"
            "  --kv-cache-type T         f16 or q8_0 (half the memory; default f16 or\n"
            "                            $HYPERLAMA_KV_CACHE_TYPE; through a server, its setting)\n");
}

int cli_load_model(const char *path, hl_loaded **out) {
    hl_err err = {0};
    if (hl_loaded_open(out, path, &err) != 0) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return -1;
    }
    return 0;
}

int cli_no_arguments(const char *first) {
    if (first[0] == '-') cli_unknown_flag(first);
    else fprintf(stderr, "Error: accepts no arguments, received \"%s\"\n", first);
    return 2;
}

int cli_format_json(const char *arg, char **out, hl_err *err) {
    *out = NULL;
    if (!arg) return 0;
    if (!strcmp(arg, "json")) return (*out = strdup("\"json\"")) ? 0 : hl_err_set(err, HL_ENOMEM, "out of memory");
    char *text = NULL;
    if (arg[0] == '@') {
        FILE *f = fopen(arg + 1, "rb");
        if (!f) return hl_err_set(err, HL_EIO, "--format: cannot open %s: %s", arg + 1, strerror(errno));
        hl_buf b = {0};
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < (8u << 20)) hl_buf_append(&b, chunk, n);
        fclose(f);
        if (b.oom) return hl_err_set(err, HL_ENOMEM, "out of memory");
        text = b.data ? b.data : strdup("");
    } else {
        text = strdup(arg);
    }
    if (!text) return hl_err_set(err, HL_ENOMEM, "out of memory");
    enum json_tokener_error je;
    struct json_object *v = json_tokener_parse_verbose(text, &je);
    int ok = v && json_object_is_type(v, json_type_object);
    json_object_put(v);
    if (!ok) {
        free(text);
        return hl_err_set(err, HL_EINVAL, "--format must be json or a JSON Schema object (inline or @FILE)%s%s",
                          je != json_tokener_success ? ": " : "", je != json_tokener_success ? json_tokener_error_desc(je) : "");
    }
    *out = text;
    return 0;
}
