/* The server's internals shared between its files: the server object, the
 * per-request state, streamed responses, loaded models, metrics and parsed
 * generation requests. Not part of the module's interface (server.h). */
#ifndef HL_SERVER_INTERNAL_H
#define HL_SERVER_INTERNAL_H

#include "server/server.h"
#include "base/json_write.h"
#include "chat/outparse.h"
#include "grammar/grammar.h"
#include "runner/draft.h"
#include "runner/engine.h"
#include "store/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct MHD_Connection;
struct MHD_Daemon;
struct json_object;

/* ---- generation options (requests.c) ------------------------------------ */

enum {
    SRV_O_TEMP = 1 << 0, SRV_O_TOPK = 1 << 1, SRV_O_TOPP = 1 << 2, SRV_O_MINP = 1 << 3, SRV_O_TYPP = 1 << 4,
    SRV_O_REPP = 1 << 5, SRV_O_REPN = 1 << 6, SRV_O_PRES = 1 << 7, SRV_O_FREQ = 1 << 8, SRV_O_SEED = 1 << 9,
    SRV_O_NPRED = 1 << 10, SRV_O_NCTX = 1 << 11, SRV_O_STOP = 1 << 12, SRV_O_SPEC = 1 << 13, SRV_O_NDRAFT = 1 << 14,
    SRV_O_DRAFT = 1 << 15, SRV_O_NGPU = 1 << 16,
};
#define SRV_DRAFT_NAME_MAX 1024

/* Options as a request (or a Modelfile's PARAMETERs) set them: only the
 * fields whose bit is in `set` count, so layers can be merged. */
typedef struct srv_opts {
    uint32_t set;
    hl_sampling_params s;
    int32_t num_predict, num_ctx;
    int speculative;   /* prompt-lookup drafts (default: the server's engine.speculative) */
    int32_t num_draft; /* most drafted tokens per step (0: none) */
    int32_t num_gpu;   /* layers on the GPU (Ollama's num_gpu: the last ones and the output; 0 none; -1 all) */
    char draft_model[SRV_DRAFT_NAME_MAX]; /* a draft model's name or path ("": prompt lookup) */
    char *stops[HL_STOP_MAX_STRINGS];
    int n_stops;
} srv_opts;

typedef enum srv_api { SRV_OLLAMA_GENERATE = 1, SRV_OLLAMA_CHAT, SRV_OAI_CHAT, SRV_OAI_COMPLETION } srv_api;

typedef struct srv_msg {
    char *role, *content;
    char *tool_calls;   /* assistant: JSON array of calls as sent, or NULL (tools.c) */
    char *tool_call_id; /* tool: the call it answers, or NULL */
    char *name;         /* tool: the tool's name (Ollama's tool_name, OpenAI's name), or NULL */
    char *thinking;     /* assistant: Ollama's thinking / reasoning_content, or NULL */
} srv_msg;

typedef enum srv_tool_choice { SRV_TOOLS_AUTO = 0, SRV_TOOLS_NONE, SRV_TOOLS_REQUIRED, SRV_TOOLS_NAMED } srv_tool_choice;

#define SRV_MAX_MESSAGES 4096
#define SRV_MAX_CHOICES 16
#define SRV_MAX_BATCH 64 /* prompts in one /v1/completions request */
#define SRV_MAX_CONTEXT_IDS (1 << 20)

/* One parsed generation request, from any of the four endpoints. */
typedef struct srv_gen {
    srv_api api;
    char *model;
    char *prompt, *system, *tmpl, *suffix;
    int raw, stream, include_usage, echo;
    srv_msg *msgs;
    size_t n_msgs;
    int has_keep_alive;
    int64_t keep_alive_ns; /* < 0 forever */
    srv_opts opts;
    hl_logit_bias *bias;
    int32_t n_bias;
    int n;            /* choices */
    int logprobs;     /* report logprobs */
    int top_logprobs; /* alternatives per token */
    int truncate;     /* Ollama chat: drop the oldest messages to fit */
    int ignore_eos;   /* OpenAI (as vLLM): end tokens are banned, so only length or stops end it */
    int32_t *context; /* Ollama generate: tokens of an earlier exchange; /v1/completions: a token-id prompt */
    int prompt_is_ids; /* /v1/completions: the prompt came as token ids (in context) */
    int n_batch;       /* /v1/completions: "prompt" is a list of this many prompts (> 1) */
    size_t n_context;
    char err_param[64]; /* OpenAI: the parameter an error is about */
    char unknown[64];   /* OpenAI: the first field the parser did not know ("" if none) */
    int n_unknown;      /* how many (ignored unless server.strict_requests) */
    hl_grammar *grammar; /* structured output (format, response_format, grammar) or NULL */
    /* tools and thinking (tools.c) */
    char *tools_json;         /* the request's tools (a JSON array, OpenAI shape), or NULL */
    srv_tool_choice tool_choice;
    char *tool_choice_name;   /* SRV_TOOLS_NAMED: the function */
    int parallel_tool_calls;  /* 0: one call at most (default 1) */
    int think_set, think;     /* Ollama's think, OpenAI's reasoning_effort / enable_thinking */
    char think_level[16];     /* "low" | "medium" | "high", or "" */
    char *tmpl_vars_json;     /* OpenAI chat_template_kwargs (a JSON object), or NULL */
} srv_gen;

int srv_parse_ollama(srv_api api, const char *body, size_t n, srv_gen *g, hl_err *err);
int srv_parse_openai(srv_api api, const char *body, size_t n, srv_gen *g, hl_err *err);
void srv_gen_free(srv_gen *g);
/* Ollama "options" (or a Modelfile's params JSON) into o; unknown keys are
 * logged and ignored, wrong types are errors. */
int srv_parse_options(struct json_object *obj, srv_opts *o, hl_err *err);
void srv_opts_merge(srv_opts *dst, const srv_opts *src); /* src's set fields win */
void srv_opts_free(srv_opts *o);
/* Parses body strictly (UTF-8 validated, depth-limited). Caller puts *out. */
int srv_json_parse(const char *body, size_t n, struct json_object **out, hl_err *err);

/* ---- metrics (metrics.c) ------------------------------------------------- */

#define SRV_HIST_BUCKETS 14
typedef struct srv_hist {
    uint64_t counts[SRV_HIST_BUCKETS + 1]; /* last: +Inf */
    double sum;
    uint64_t n;
} srv_hist;

typedef struct srv_req_count {
    char model[128];
    int status;
    uint64_t n;
} srv_req_count;

typedef struct srv_metrics {
    pthread_mutex_t m;
    srv_req_count reqs[256];
    int n_reqs;
    srv_hist ttft, itl;
    uint64_t prompt_tokens, gen_tokens;
} srv_metrics;

void srv_metrics_init(srv_metrics *m);
void srv_metrics_destroy(srv_metrics *m);
void srv_metrics_request(srv_metrics *m, const char *model, int status);
void srv_metrics_latency(srv_metrics *m, double ttft_s, const double *itl_s, size_t n_itl);
void srv_metrics_tokens(srv_metrics *m, int64_t prompt, int64_t gen);

/* ---- loaded models (models.c) -------------------------------------------- */

/* A draft model loaded for one target model (speculative decoding): made on
 * the first request that names it, kept (or its refusal kept) until the
 * target is unloaded. */
typedef struct srv_draft {
    char *key;          /* the draft's normalized name or path */
    hl_loaded *lm;
    hl_draft_model *dm; /* NULL: refused, error says why */
    char error[sizeof(((hl_err *)0)->msg)];
    struct srv_draft *next;
} srv_draft;

typedef struct srv_model {
    char *key;          /* normalized name ("registry.ollama.ai/library/x:latest") or file path */
    char *name;         /* display name */
    char *path;
    hl_loaded *lm;
    hl_engine *eng;
    store_model sm;     /* store metadata (zero for file paths) */
    int from_store;
    srv_opts params;    /* the Modelfile's PARAMETERs */
    srv_msg *mf_msgs;   /* the Modelfile's MESSAGEs, prepended to chats */
    size_t n_mf_msgs;
    int refs, loading, failed;
    int64_t keep_alive_ns;       /* applied when the last user leaves */
    int64_t expires_ns;          /* monotonic; INT64_MAX: never */
    int64_t expires_wall;        /* unix seconds, 0 when never */
    int64_t last_used_ns;
    int64_t size_bytes;          /* weights + the KV of one default context (/api/ps "size") */
    int64_t vram_bytes;          /* the part of it in GPU memory (/api/ps "size_vram") */
    int on_gpu;                  /* its engine runs (partly) on a GPU backend */
    int32_t num_gpu;             /* the placement it was loaded with (-1: all layers the backend can take) */
    int64_t kv_pool_bytes;       /* the KV pool reserved for every sequence (/metrics) */
    hl_grammar_vocab *gvocab;    /* the tokenizer indexed for grammars: made on first use (structured.c) */
    pthread_mutex_t draft_mu;    /* guards drafts (a draft loads under it) */
    srv_draft *drafts;
    struct srv_model *next;
} srv_model;

typedef struct srv_models {
    pthread_mutex_t m;
    pthread_cond_t cv;
    srv_model *head;
    const srv_config *cfg;
    store *st;          /* may be NULL when the store could not be opened */
    hl_pool *pool;      /* the process's one thread pool, shared by every model */
    hl_backend *cpu;    /* the CPU backend over it (the fallback) */
    hl_backend *be;     /* the configured backend (engine.backend); may be cpu */
    int auto_backend;   /* engine.backend is "auto": a model the GPU cannot hold runs on the CPU */
    pthread_t reaper;
    int stop, reaper_started;
    atomic_int n_loading;
} srv_models;

int srv_models_init(srv_models *ms, const srv_config *cfg, store *st, hl_err *err);
void srv_models_destroy(srv_models *ms); /* unloads everything */
/* Finds or loads a model and takes a reference. HL_ENOENT: no such model. */
/* num_gpu: the request's num_gpu option (SRV_NUM_GPU_UNSET: none). A model
 * loaded with another placement is reloaded when idle, as Ollama does; one
 * in use keeps its placement for this request. */
#define SRV_NUM_GPU_UNSET (-2)
int srv_models_get(srv_models *ms, const char *name, int32_t num_gpu, srv_model **out, hl_err *err);
/* The draft model `name` (a model name or a GGUF path) paired with m, loaded
 * on first use; borrowed while the caller holds m. HL_EINVAL with the reason
 * when its vocabulary differs, HL_ENOENT when there is no such model. */
int srv_model_draft(srv_models *ms, srv_model *m, const char *name, hl_draft_model **out, hl_err *err);
/* Drops the reference; keep_alive_ns (< 0 forever, 0 now) sets the expiry. */
void srv_models_put(srv_models *ms, srv_model *m, int has_keep_alive, int64_t keep_alive_ns);
/* Unloads a model now if it is loaded and idle (keep_alive 0 with no prompt). */
int srv_models_unload(srv_models *ms, const char *name);
/* Calls fn for each ready model under the lock (fn must not block). */
void srv_models_each(srv_models *ms, void (*fn)(void *ctx, srv_model *m), void *ctx);
/* What `show` says a model runs on (/api/show "backend"): a loaded model's
 * placement ("vulkan (12 of 28 layers, the rest on cpu)", "cpu"), else what
 * loading it would choose (the rule load_model applies) from the server's
 * backend, the model's Modelfile parameters (its num_gpu; NULL: none), its
 * weight bytes and layers (either <= 0: unknown) and the GPU's free memory. */
void srv_models_placement(srv_models *ms, const char *key, const srv_opts *params, int64_t weight_bytes,
                          int32_t n_layer, char *out, size_t cap);
/* Normalizes a model name to its key (a file path stays as given). */
int srv_model_key(const char *name, char *out, size_t cap, int *is_path, hl_err *err);

/* ---- streamed responses (stream.c) ---------------------------------------- */

typedef struct srv_stream srv_stream;
/* Appends whatever output is ready to out; returns 1 when the response is
 * complete (out holds the last bytes), 0 when more will come later. Called
 * from an HTTP thread with no stream lock held. */
typedef int (*srv_pull_fn)(srv_stream *st, void *ctx, hl_buf *out);

struct srv_stream {
    pthread_mutex_t m;
    uint64_t wakes;
    int suspended, finished;
    struct MHD_Connection *conn;
    hl_buf out;
    size_t out_pos;
    srv_pull_fn pull;
    void (*free_ctx)(void *ctx);
    void (*cancel)(void *ctx); /* server shutdown: stop soon */
    void *ctx;
    struct srv_server *srv;
    struct srv_stream *prev, *next; /* the server's list of live streams */
};

/* Wakes a suspended stream (safe from any thread, never blocks for long). */
void srv_stream_wake(srv_stream *st);

/* ---- model capabilities (caps.c) ------------------------------------------ */

/* What srv_put_capabilities decided, per model file (path, size, mtime) and
 * TEMPLATE; owned by the server, guarded by m. */
typedef struct srv_caps_entry srv_caps_entry;
typedef struct srv_caps_cache {
    pthread_mutex_t m;
    srv_caps_entry *e;
    int n, cap;
} srv_caps_cache;
void srv_caps_cache_init(srv_caps_cache *c);
void srv_caps_cache_destroy(srv_caps_cache *c);
/* Writes "capabilities": [...] for the model file at path with the
 * Modelfile TEMPLATE go_template (NULL: none); c may be NULL (no cache). */
void srv_put_capabilities(srv_caps_cache *c, hl_jw *w, const char *go_template, const char *path);

/* ---- the server and one request (http.c) ---------------------------------- */

typedef struct srv_server {
    srv_config cfg;
    struct MHD_Daemon *d;
    int port;
    srv_models models;
    srv_metrics metrics;
    store *st;
    srv_caps_cache caps;      /* /api/tags and /api/show capabilities, per model file */
    pthread_mutex_t lm;       /* guards streams */
    srv_stream *streams;
    atomic_int active;        /* requests in flight */
    atomic_int shutting_down;
    int64_t started_ns;
} srv_server;

typedef struct srv_req {
    srv_server *srv;
    struct MHD_Connection *conn;
    char method[16];
    char url[512];
    hl_buf body;
    int too_big;
    int64_t t0;
    int status;
    char model[128];
    char origin[256];         /* echoed in CORS headers when allowed */
    int origin_ok;
    int oai;                  /* route is /v1/: OpenAI error format */
    int upload_fd;            /* POST /api/blobs: body goes to a file */
    char upload_path[4096];
    int64_t upload_len;
    char note[160];           /* extra log text (tokens, timings) */
} srv_req;

/* Responses. Each returns the MHD result of queueing it. */
int srv_reply(srv_req *r, int status, const char *ctype, const char *body, size_t n);
int srv_reply_json(srv_req *r, int status, hl_buf *json); /* frees json */
int srv_reply_error(srv_req *r, int status, const char *msg); /* Ollama or OpenAI shape by route */
int srv_reply_oai_error(srv_req *r, int status, const char *msg, const char *type, const char *param, const char *code);
/* Queues a streamed response that pulls from pull/ctx; takes ownership of ctx
 * (free_ctx runs when the response is done, also on failure). */
int srv_reply_stream(srv_req *r, int status, const char *ctype, srv_pull_fn pull, void (*free_ctx)(void *),
                     void (*cancel)(void *), void *ctx, srv_stream **out);
/* Maps an error code to an HTTP status (HL_ENOENT 404, HL_EBUSY 503 ...). */
int srv_status_of(int code);

/* Routes */
int srv_route_ollama(srv_req *r);   /* /api/generate, /api/chat, /api/tags, /api/show, /api/ps, /api/version */
int srv_route_store(srv_req *r);    /* /api/pull, create, copy, delete, blobs */
int srv_route_openai(srv_req *r);   /* /v1/... */
int srv_route_misc(srv_req *r);     /* /, /health, /metrics */
int srv_route_tokenize(srv_req *r); /* /api/tokenize, /api/detokenize, /tokenize, /detokenize */
int srv_route_embed(srv_req *r);    /* /api/embed, /api/embeddings, /v1/embeddings (routes_embed.c) */
void srv_metrics_render(srv_server *s, hl_buf *out);

/* ---- generation shared by both APIs (gen.c) ------------------------------- */

typedef struct srv_run srv_run;
typedef struct srv_choice {
    hl_buf text;       /* the answer's content (without thinking and tool-call text) */
    struct chat_outparse *op; /* splits the output when tools or thinking apply (tools.c) */
    hl_buf thinking;   /* all thinking so far */
    hl_buf d_content, d_thinking; /* what the last event added */
    struct chat_tool_call *calls; /* every call so far; calls[n_calls_sent..] are new */
    size_t n_calls, cap_calls, n_calls_sent;
    hl_choice_stats stats;
    int done;
    hl_buf logprobs;   /* API-specific JSON fragments, comma-joined */
    int n_lp;
    int64_t lp_chars;  /* /v1/completions: characters of the tokens so far (text_offset) */
    int lp_init;       /* lp_chars has its starting value */
    tok_stream lp_ts;  /* the text of the tokens so far, for lp_chars */
} srv_choice;

/* One generation in flight: the model reference, the handle, the tokens. */
struct srv_run {
    srv_server *srv;
    srv_model *model;
    srv_gen g;
    hl_handle *h;
    srv_stream *st;
    int32_t *prompt;
    size_t n_prompt;
    int32_t *gen_ids;   /* choice 0's tokens (Ollama generate's context) */
    size_t n_gen, cap_gen;
    int dropped_msgs;   /* truncate: messages dropped from the history */
    srv_choice choices[SRV_MAX_CHOICES];
    int n_done;
    int error;
    char errmsg[256];
    int64_t t_start, t_first, t_last, load_ns;
    double *itl;
    size_t n_itl, cap_itl;
    int sent_first;     /* OpenAI streaming: role chunk sent */
    int index_base;     /* batches: the response index of choice 0 */
    hl_token_logprobs *plp; /* /v1/completions echo + logprobs: the prompt's scores (PROMPT events) */
    size_t n_plp, cap_plp;
    char *prompt_text;  /* the rendered prompt (decides whether output starts in thinking) */
    char id[40];
    int64_t created;
};

/* ---- structured outputs (structured.c) ------------------------------------------ */

/* Ollama's "format" ("json" or a JSON Schema) and the "grammar" field (GBNF,
 * as llama-server) of root into g->grammar; absent, null or "" is nothing.
 * A bad schema or grammar is an error naming the problem (HTTP 400). */
int srv_structured_ollama(struct json_object *root, srv_gen *g, hl_err *err);
/* OpenAI's response_format value ({"type": "text" | "json_object" |
 * "json_schema", "json_schema": {"name", "schema", "strict"}}). */
int srv_structured_response_format(struct json_object *v, srv_gen *g, hl_err *err);
/* The "grammar" field's value (GBNF text). */
int srv_structured_grammar(struct json_object *v, srv_gen *g, hl_err *err);
/* The logits processor for run's grammar (NULL when it has none): takes the
 * grammar out of run->g; the caller (then the engine) owns the processor. */
int srv_structured_proc(srv_run *run, hl_logits_proc **out, hl_err *err);

/* ---- tools and thinking (tools.c) ---------------------------------------- */

/* Request fields: OpenAI's tools, tool_choice, parallel_tool_calls,
 * reasoning_effort, chat_template_kwargs (returns 1 when key was one of
 * them, 0 when not, < 0 on error); Ollama's tools and think; a message's
 * tool_calls, tool_call_id, name / tool_name, thinking / reasoning_content. */
int srv_parse_oai_tool_key(const char *key, struct json_object *v, srv_gen *g, hl_err *err);
int srv_parse_ollama_tools(struct json_object *root, srv_gen *g, hl_err *err);
int srv_parse_msg_tools(struct json_object *m, srv_msg *msg, int oai, hl_err *err);
void srv_msg_tools_free(srv_msg *m);
void srv_gen_tools_free(srv_gen *g);
/* Before the prompt is built: checks the model can do what was asked (tools,
 * think, tool_choice). Errors are the request's (400). */
int srv_out_check(struct srv_run *run, const char *go_template, hl_err *err);
/* After the prompt is built: sets up each choice's output splitter when
 * tools or thinking apply. */
int srv_out_setup(struct srv_run *run, const char *go_template, hl_err *err);
/* Runs an event's text through its choice's splitter: ev's text becomes the
 * content part; c->d_thinking and new calls hold the rest. */
void srv_out_event(struct srv_run *run, srv_choice *c, hl_event *ev);
void srv_choice_out_free(srv_choice *c);
/* GBNF (appended to out) for an answer of tool calls in syntax syn, each
 * calling one of tools (an OpenAI tools array; only: just that function,
 * NULL: any) with arguments that follow its parameters; several when
 * parallel; lead (may be NULL) is text before it all (tool_grammar.c). */
int srv_tool_gbnf(struct json_object *tools, const char *only, int parallel, const char *lead, const chat_call_syntax *syn, hl_buf *out,
                  hl_err *err);
/* "tool_calls" when the choice ended by calling tools, else done_reason. */
const char *srv_finish_reason(const srv_choice *c, const char *done_reason);
/* Writes call k of a choice as an OpenAI tool_calls entry: part 0 whole
 * (message), 1 the stream's first delta (index, id, type, name, arguments
 * ""), 2 the stream's arguments delta (index, arguments). */
void srv_put_oai_call(const struct srv_run *run, const srv_choice *c, size_t k, int part, hl_buf *out);
/* Writes calls [from, to) as Ollama tool_calls entries (arguments objects). */
void srv_put_ollama_calls(const srv_choice *c, size_t from, size_t to, hl_buf *out);
/* Model capabilities from its templates: CHAT_CAP_* bits. */
unsigned srv_template_caps(const char *go_template, const char *jinja_src);

/* Parses nothing: resolves the model, builds the prompt, submits. On error
 * replies itself. Takes ownership of g in every case. */
int srv_gen_start(srv_req *r, srv_gen *g, srv_pull_fn pull, const char *ctype);
/* Several requests answered as one response (a /v1/completions batch): each
 * gs[i] becomes its own run, its choices numbered from i * n; pull gets the
 * srv_batch. Takes ownership of every gs[i]; on error replies with the first. */
typedef struct srv_batch {
    srv_run **runs;
    int n;
} srv_batch;
int srv_gen_start_batch(srv_req *r, srv_gen *gs, int k, srv_pull_fn pull, const char *ctype);
/* Drains available events into run state; calls on_token per TOKEN event.
 * Returns 1 when every choice is done (or the request failed). */
int srv_run_drain(srv_run *run, void (*on_token)(srv_run *, const hl_event *, hl_buf *), hl_buf *out);
/* The token's text as the API shows it (its piece, special tokens rendered). */
void srv_token_piece(const srv_run *run, int32_t tok, char *buf, size_t cap);
void srv_iso_time(char *out, size_t cap, int64_t unix_ns);
int64_t srv_wall_ns(void);

#endif
