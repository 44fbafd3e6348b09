/* The command-line program's internals: one function per verb, the shared
 * option parsing (sampling flags, threads, context), and the in-process
 * engine the verbs that run a GGUF file use (local.c: the engine the server
 * uses too, made from the command line's options). Each verb returns the
 * process exit status (0 ok, 1 failure, 2 usage). */
#ifndef HL_CLI_H
#define HL_CLI_H

#include "runner/engine.h"
#include "sample/sample.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#define HL_VERSION "0.1.0"
#define HL_CLI_MAX_STOPS 16

/* What an in-process engine is made of (flags, a model's PARAMETERs). */
typedef struct cli_engine_opts {
    int32_t num_ctx;   /* positions of the one sequence; <= 0: 4096 (cli_run_ctx) */
    int32_t n_threads; /* <= 0: one per core */
    int32_t n_batch;   /* prompt tokens per step (the engine's step_tokens); <= 0: 512 */
    hl_type kv_type;   /* HL_TYPE_F16 or HL_TYPE_Q8_0 */
    int prefix_cache;  /* reuse cached prompt blocks (chat turns); bench turns it off */
    const char *backend; /* --backend: "auto" (NULL), "cpu", "ref", "vulkan", "vulkan:N" */
    int vulkan_device;   /* HYPERLAMA_VULKAN_DEVICE (the server's variable): -1 the GPU with the most memory */
    double gpu_memory_fraction; /* HYPERLAMA_GPU_MEMORY_FRACTION; default 0.9 */
    int32_t num_gpu;     /* --num-gpu / PARAMETER num_gpu: layers on the GPU (the last ones); -1 (default) all, 0 none */
    int32_t max_seqs;    /* sequences at once, each with the whole context in the pool; <= 0: 1 (bench --streams) */
} cli_engine_opts;

/* What computes for an in-process verb: the process's one thread pool and
 * the backend over it (model.h hl_backend_open). A verb opens one and closes
 * it after every engine made on it. */
typedef struct cli_compute {
    hl_pool *pool;
    hl_backend *be;
    hl_backend *cpu;     /* when be is a GPU: the CPU backend for the layers num_gpu leaves off it */
    int32_t n_threads;   /* as asked (<= 0: one per core) */
    char backend[16];
} cli_compute;
int cli_compute_open(cli_compute *c, const cli_engine_opts *o, hl_err *err);
void cli_compute_close(cli_compute *c);
/* Whether an engine made with o can run on c (same threads and backend). */
int cli_compute_fits(const cli_compute *c, const cli_engine_opts *o);

/* Options shared by the verbs that generate. */
typedef struct cli_gen_opts {
    hl_sampling_params sampling;
    int32_t num_predict;
    const char *stops[HL_CLI_MAX_STOPS];
    int32_t n_stops;
    cli_engine_opts engine;
    int speculative;     /* prompt-lookup drafts (default on) */
    int32_t num_draft;   /* most drafts per step; 0: the engine's default */
    const char *draft_model; /* a draft model (path or name) instead of prompt lookup; NULL/"": none */
    int raw, verbose;
    const char *system;
    int think_set, think;    /* --think[=true|false|low|medium|high] */
    const char *think_level; /* NULL, or "low" | "medium" | "high" */
    int hide_thinking;       /* --hidethinking: thinking is not printed */
    const char *format;      /* --format: "json", a JSON Schema, or @FILE holding one (cli_format_json) */
} cli_gen_opts;

/* --format's value as the JSON that Ollama's "format" field carries ("json"
 * becomes the string "json"; a schema is given inline or as @FILE): a new
 * string in *out (NULL when arg is NULL), checked to be "json" or a JSON
 * object. */
int cli_format_json(const char *arg, char **out, hl_err *err);

/* Printing an answer whose thinking is split from its content (think.c):
 * thinking shows dimmed under "Thinking..." and ends with
 * "...done thinking." before the content, as Ollama's CLI shows it (the
 * dimming only on a terminal). */
typedef struct cli_think_out {
    int in_think, hide;
} cli_think_out;
void cli_think_print(cli_think_out *t, const char *thinking, size_t n_thinking, const char *content, size_t n_content);
void cli_think_end(cli_think_out *t);

void cli_gen_opts_default(cli_gen_opts *o);
/* Tries to consume argv[*i] (and its value) as a generation option. Returns 1
 * if consumed, 0 if not an option of this set, -1 on a bad value (message
 * printed). Accepts "--flag value" and "--flag=value". */
int cli_parse_gen_opt(cli_gen_opts *o, int argc, char **argv, int *i);
/* The rest of a one-model command's argument loop: argv[*i] is a generation
 * option, or the MODEL (*model, the first positional argument). Returns 0
 * when consumed, -1 (message printed) for an unknown flag, a bad value or a
 * second positional argument. */
int cli_parse_gen_opt_or_model(cli_gen_opts *o, int argc, char **argv, int *i, const char **model);
void cli_print_gen_opts_help(FILE *out);

/* Value of "--name value" / "--name=value" at argv[*i], or NULL if argv[*i]
 * is not that flag; *bad set when the flag is there without a value. */
const char *cli_flag_value(const char *name, int argc, char **argv, int *i, int *bad);

int cmd_run(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_serve(int argc, char **argv);
/* store verbs (cmd_store.c) */
int cmd_list(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_push(int argc, char **argv);
int cmd_import(int argc, char **argv);
/* the server's running models (cmd_ps.c) */
int cmd_ps(int argc, char **argv);
int cmd_stop(int argc, char **argv);

/* ---- talking to the server (client.h; helpers in cmd_store.c) ---- */
struct cli_client;
struct json_object;
struct store_modelfile;
/* "Error: unknown flag: --x" / "unknown shorthand flag: 'x' in -x" (cobra's words). */
void cli_unknown_flag(const char *arg);
/* A verb that takes no arguments got one: says so as Ollama does; returns 2. */
int cli_no_arguments(const char *first);
/* Finds or starts the server; prints the error. */
int cli_connect(struct cli_client *c);
/* POST /api/show; prints a not-found error with near matches. */
int cli_show_model(struct cli_client *c, const char *name, struct json_object **out);
/* The default `show` page of an /api/show reply. */
void cli_print_show(struct json_object *show);
/* POST /api/pull with the progress bar; prints errors. */
int cli_pull_model(struct cli_client *c, const char *name, int insecure);
/* Names on the server near name (", "-separated, malloc'ed) or NULL. */
char *cli_suggest(struct cli_client *c, const char *name);
/* /api/show's "parameters" text into PARAMETER commands (plain values). */
int cli_parse_param_text(const char *text, struct store_modelfile *mf);
/* run through the server (run_remote.c): MODEL is a store name; prompt NULL
 * starts the interactive chat. */
int cli_run_remote(int argc, char **argv, const char *model, const char *prompt);
/* run on an embedding model (embed_print.c): prints TEXT's embedding as a JSON
 * array; in-process on eng, or through the server's /api/embed. */
struct tok_vocab;
int cli_embed_local(hl_engine *eng, const struct tok_vocab *tok, const char *text);
int cli_embed_remote(struct cli_client *c, const char *model, const char *text);
/* An /api/show reply lists the embedding capability. */
int cli_show_is_embedding(struct json_object *show);
/* ---- will it fit (memfit.c): one estimate for run's check and show's line ---- */
/* What the estimate needs to know of a model. */
typedef struct cli_mem_shape {
    int64_t weights;               /* bytes of tensor data */
    int64_t n_layer, n_head_kv;    /* <arch>.block_count, <arch>.attention.head_count_kv */
    int64_t k_dim, v_dim;          /* per head (key_length/value_length, else embedding/heads) */
    int64_t train_ctx;             /* <arch>.context_length, 0 unknown */
    int kv_q8;                     /* the KV cache is stored as Q8_0 (the server's kv_cache_type) */
} cli_mem_shape;
/* The estimate: need = weights + KV (f16, or Q8_0 when the server uses it) for
 * ctx tokens + overhead. */
typedef struct cli_mem_need {
    int64_t weights, kv, overhead, need;
    int64_t ctx;   /* num_ctx (4096 when 0), capped at the trained context */
    int64_t avail; /* MemAvailable or $HYPERLAMA_MEMORY_LIMIT; -1 unknown */
} cli_mem_need;
int cli_mem_shape_gguf(const char *gguf_path, cli_mem_shape *out, hl_err *err);
/* From an /api/show reply (model_info + weights_size). */
int cli_mem_shape_show(struct json_object *show, cli_mem_shape *out, hl_err *err);
void cli_mem_estimate(const cli_mem_shape *m, int32_t num_ctx, cli_mem_need *out);
int cli_mem_fits(const cli_mem_need *n);
int64_t cli_mem_available(void);
void cli_mem_bytes(int64_t b, char *out, size_t cap); /* "1.3 GiB" */
/* HL_ENOMEM with the numbers and what to try. */
int cli_mem_error(const cli_mem_need *n, hl_err *err);
/* show's line: "needs ..., N available" or "needs ..., only N available; try ..." */
void cli_mem_fit_line(const cli_mem_need *n, char *out, size_t cap);
/* Both run paths, before loading: 0 when the GGUF fits, else cli_mem_error. */
int cli_check_memory(const char *gguf_path, int32_t num_ctx, int kv_q8, hl_err *err);
void cli_repl_help(const char *topic); /* "", "set", "show", "shortcuts", "parameters" */
int cli_split_words(char *s, char **w, int max);
void cli_unquote(char *s);
void cli_history_path(char *out, size_t cap);
/* What a `run` path does for the interactive chat's commands; cli_repl
 * prints the messages that do not depend on the path. */
typedef struct cli_chat_ops {
    void (*answer)(void *ctx, const char *text);          /* a user turn: stream the answer */
    void (*clear)(void *ctx);                             /* /clear */
    void (*set_parameter)(void *ctx, char **words, int n); /* /set parameter KEY VALUE...: prints */
    void (*set_system)(void *ctx, char *text);            /* takes text (owned; NULL when out of memory) */
    void (*set_verbose)(void *ctx, int on);               /* /set verbose|quiet */
    void (*set_think)(void *ctx, int on);                 /* /set think|nothink */
    int (*set_format)(void *ctx, const char *format);     /* /set format F (as --format) | noformat (NULL);
                                                             nonzero: F refused, err printed */
    void (*show)(void *ctx, const char *what);            /* /show [what]; NULL: none given */
    int (*load)(void *ctx, const char *name);             /* /load NAME: prints; nonzero ends the chat with failure */
    void (*save)(void *ctx, const char *name);            /* /save [NAME]; NULL: none given */
} cli_chat_ops;
/* The interactive chat (repl_common.c): >>> prompt, line editing and
 * history, """ blocks, Ollama's slash commands, each driving ops on ctx.
 * interrupted is the flag the caller's SIGINT handler sets. Returns the exit
 * status: 0, or 1 when a /load failed. */
/* /set parameter and /show parameters, shared by both chat paths (repl_common.c). */
int cli_store_user_param(struct store_modelfile *user, char **words, int n);
void cli_print_param_set(char **words, int n);
void cli_print_param_list(const struct store_modelfile *mf);
/* A deep copy of an /api/show reply with the session's /set parameter
 * values over the model's ("parameters" and "modelfile") and its system
 * message (when non-NULL). Caller puts; NULL when out of memory. */
struct json_object *cli_session_show(struct json_object *show, const struct store_modelfile *user, const char *system);
/* /show WHAT in a chat (info, license, modelfile, parameters, system,
 * template), from show as the session has changed it. */
void cli_repl_show(struct json_object *show, const struct store_modelfile *user, const char *system, const char *what);
/* The Parameters, System and License sections of show's page. */
void cli_print_show_sections(struct json_object *show);

int cli_repl(const cli_chat_ops *ops, void *ctx, volatile sig_atomic_t *interrupted);
/* "2024-05-01T10:20:30.123Z" (or +hh:mm) as unix seconds; 0 when unreadable. */
int64_t cli_parse_iso(const char *iso);
/* Rows of cells under hdr, padded as Ollama's tables (at most 8 columns). */
void cli_print_table(const char *const *hdr, int ncol, char (*cells)[8][256], size_t nrow);

/* ---- progress display (progress.c) ---- */
struct store_progress;
typedef struct cli_progress {
    int tty; /* stderr is a terminal: draw bars */
    char last_status[256];
    int64_t t0_ns, last_draw_ns, last_completed;
    double rate;
    /* without a terminal: the lines already printed */
    char **printed;
    size_t n_printed;
} cli_progress;
/* A store progress callback (ctx: cli_progress). */
void cli_progress_report(void *ctx, const struct store_progress *p);
/* A cli_line_fn for /api/pull and /api/create streams (ctx: cli_progress). */
int cli_progress_line(void *ctx, struct json_object *o);
/* Ends the last bar's line and frees what ui holds. */
void cli_progress_finish(cli_progress *ui);

/* Loads a model given on the command line, printing the error on failure. */
int cli_load_model(const char *path, hl_loaded **out);

/* ---- the in-process engine (local.c): what `run FILE.gguf`, `bench` use ---- */
/* The positions `run` gives its sequence: num_ctx (<= 0: 4096), never past
 * the trained context (train_ctx, 0 unknown). The memory check counts the
 * same number. */
int32_t cli_run_ctx(int32_t num_ctx, int64_t train_ctx);
/* Makes the engine of an in-process verb: one sequence, a KV pool covering
 * cli_run_ctx positions, o's threads, step size, KV type and prefix cache.
 * The only place the program creates an engine (the server's is in
 * server/models.c). */
int cli_engine_open(const hl_loaded *lm, const cli_engine_opts *o, cli_compute *c, hl_engine **out, hl_err *err);
/* Submits r and waits for its end, handing each piece of text to emit (may
 * be NULL) as it comes; *interrupted (may be NULL) becoming nonzero cancels
 * it. stats (may be NULL) receives the DONE event's. An engine ERROR event
 * fails with its message. r's drafter context (if any) is taken in every case. */
int cli_engine_generate(hl_engine *e, const hl_request *r, void (*emit)(void *user, const char *text, size_t n),
                        void *user, volatile sig_atomic_t *interrupted, hl_choice_stats *stats, hl_err *err);

#endif
