/* Loaded models: one hl_loaded + hl_engine per model, shared by the requests
 * that use it (reference counted). A model stays loaded for its keep_alive
 * after its last request (default 5m; 0 unloads at once; negative: forever); a
 * reaper thread unloads expired ones. At most cfg->max_loaded are loaded: the
 * least recently used idle model makes room. Names resolve as a file path to a
 * GGUF when one exists, else through the store (Modelfile params, system and
 * template come along). Loading happens outside the lock; others asking for
 * the same model wait for it. A model's draft models (speculative decoding)
 * hang off it: loaded on first use, freed after its engine. */
#include "server/internal.h"
#include "base/clock.h"
#include "base/log.h"
#include "store/modelfile.h"
#include "base/memfit.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static int64_t auto_kv_bytes(void) {
    int64_t avail = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) avail = kb * 1024;
        fclose(f);
    }
    int64_t two = 2ll << 30;
    if (avail <= 0) return 512ll << 20;
    return avail / 4 < two ? avail / 4 : two;
}

/* The KV budget of a model on the GPU: its share (one of max_loaded) of
 * what the device may still take once the model's weights and step buffers
 * are placed (hl_backend_mem.free is already the gpu_memory_fraction of the
 * free memory). At least one block's worth is left to the engine's own
 * minimum; a model that does not fit is refused when its weights are placed. */
static size_t gpu_kv_bytes(srv_models *ms, const hl_loaded *lm, int32_t step_tokens) {
    hl_backend_mem mem = {0};
    ms->be->ops->memory(ms->be, NULL, &mem);
    int64_t scratch = (int64_t)hl_plan_buffer_bytes(hl_model_plan(lm->model), step_tokens > 0 ? step_tokens : 512);
    int64_t room = (int64_t)mem.free - (int64_t)hl_model_weight_bytes(lm->model) - scratch;
    int64_t share = room / (ms->cfg->max_loaded > 0 ? ms->cfg->max_loaded : 1);
    return share > (16ll << 20) ? (size_t)share : (size_t)(16ll << 20);
}

int srv_model_key(const char *name, char *out, size_t cap, int *is_path, hl_err *err) {
    struct stat sb;
    *is_path = 0;
    if ((strchr(name, '/') || strstr(name, ".gguf")) && stat(name, &sb) == 0 && S_ISREG(sb.st_mode)) {
        char *rp = realpath(name, NULL);
        snprintf(out, cap, "%s", rp ? rp : name);
        free(rp);
        *is_path = 1;
        return 0;
    }
    store_name n;
    int rc = store_name_parse(name, &n, err);
    if (rc) return rc;
    store_name_full(&n, out, cap);
    return 0;
}

static void *reaper_main(void *arg);

int srv_models_init(srv_models *ms, const srv_config *cfg, store *st, hl_err *err) {
    memset(ms, 0, sizeof *ms);
    pthread_mutex_init(&ms->m, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ms->cv, &ca);
    pthread_condattr_destroy(&ca);
    ms->cfg = cfg;
    ms->st = st;
    ms->pool = hl_pool_new(cfg->threads);
    if (!ms->pool) return hl_err_set(err, HL_ENOMEM, "cannot start the thread pool");
    int rc = hl_backend_open(&ms->cpu, "cpu", ms->pool, err);
    if (rc) return rc;
    ms->be = ms->cpu;
    if (strcmp(cfg->backend, "cpu")) {
        char note[600];
        hl_backend_choice ch = {.name = cfg->backend, .vulkan_device = cfg->vulkan_device,
                                .gpu_memory_fraction = cfg->gpu_memory_fraction};
        if ((rc = hl_backend_open_choice(&ms->be, &ch, ms->pool, note, sizeof note, err))) return rc;
        if (note[0]) hl_info("%s", note);
        if (!strcmp(hl_backend_name(ms->be), "cpu")) { /* auto found no GPU: the one CPU backend serves */
            hl_backend_free(ms->be);
            ms->be = ms->cpu;
        }
    }
    ms->auto_backend = !strcmp(cfg->backend, "auto");
    hl_backend_mem where = {0};
    ms->be->ops->memory(ms->be, NULL, &where);
    if (where.where && strcmp(where.where, "host")) {
        char freeb[32];
        hl_mem_bytes((int64_t)where.free, freeb, sizeof freeb);
        hl_info("GPU: %s", hl_backend_description(ms->be));
        hl_info("backend: %s on %s (models take up to %s of its memory, engine.gpu_memory_fraction %g; %d compute "
                "threads shared by every model for what runs on the CPU)",
                hl_backend_name(ms->be), where.where, freeb, cfg->gpu_memory_fraction, hl_pool_size(ms->pool));
    } else
        hl_info("backend: %s (%d compute threads shared by every model)", hl_backend_name(ms->be), hl_pool_size(ms->pool));
    if (pthread_create(&ms->reaper, NULL, reaper_main, ms) != 0) return hl_err_set(err, HL_ENOMEM, "cannot start a thread");
    ms->reaper_started = 1;
    return 0;
}

static void model_free(srv_model *m) {
    if (!m) return;
    if (m->lm) hl_info("unloading %s", m->name ? m->name : m->key);
    hl_engine_free(m->eng); /* frees every request's drafter: then the drafts can go */
    for (srv_draft *d = m->drafts, *next; d; d = next) {
        next = d->next;
        hl_draft_model_free(d->dm);
        hl_loaded_free(d->lm);
        free(d->key);
        free(d);
    }
    pthread_mutex_destroy(&m->draft_mu);
    hl_grammar_vocab_unref(m->gvocab);
    hl_loaded_free(m->lm);
    store_model_free(&m->sm);
    srv_opts_free(&m->params);
    for (size_t i = 0; i < m->n_mf_msgs; i++) {
        free(m->mf_msgs[i].role);
        free(m->mf_msgs[i].content);
    }
    free(m->mf_msgs);
    free(m->key);
    free(m->name);
    free(m->path);
    free(m);
}

void srv_models_destroy(srv_models *ms) {
    if (ms->reaper_started) {
        pthread_mutex_lock(&ms->m);
        ms->stop = 1;
        pthread_cond_broadcast(&ms->cv);
        pthread_mutex_unlock(&ms->m);
        pthread_join(ms->reaper, NULL);
        ms->reaper_started = 0;
    }
    srv_model *m = ms->head;
    while (m) {
        srv_model *next = m->next;
        model_free(m);
        m = next;
    }
    ms->head = NULL;
    if (ms->be != ms->cpu) hl_backend_free(ms->be);
    hl_backend_free(ms->cpu);
    hl_pool_free(ms->pool);
    ms->be = ms->cpu = NULL;
    ms->pool = NULL;
    pthread_cond_destroy(&ms->cv);
    pthread_mutex_destroy(&ms->m);
}

static void unlink_model(srv_models *ms, srv_model *m) {
    for (srv_model **pp = &ms->head; *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            return;
        }
}

static void set_expiry(srv_model *m, int64_t ka) {
    if (ka < 0) {
        m->expires_ns = INT64_MAX;
        m->expires_wall = 0;
    } else {
        m->expires_ns = hl_now_ns() + ka;
        m->expires_wall = (int64_t)time(NULL) + ka / 1000000000ll;
    }
}

/* The Modelfile's MESSAGE layer, parsed once per load (every chat starts with it). */
static int load_mf_messages(srv_model *m, hl_err *err) {
    store_modelfile mf = {0};
    int rc = store_messages_from_json(m->sm.messages_json, &mf, err);
    if (!rc && mf.n) {
        m->mf_msgs = calloc(mf.n, sizeof *m->mf_msgs);
        if (!m->mf_msgs) rc = hl_err_set(err, HL_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < mf.n; i++) {
            m->mf_msgs[i].role = strdup(mf.cmds[i].key ? mf.cmds[i].key : "user");
            m->mf_msgs[i].content = strdup(mf.cmds[i].value ? mf.cmds[i].value : "");
            m->n_mf_msgs++;
            if (!m->mf_msgs[i].role || !m->mf_msgs[i].content) rc = hl_err_set(err, HL_ENOMEM, "out of memory");
        }
    }
    store_modelfile_free(&mf);
    return rc;
}

/* Loads the files of m (outside the lock). */
/* Layers of the model that fit in the GPU's room next to the output and
 * step buffers (an estimate from the model's weight bytes per layer; the
 * backend still checks each placement exactly). */
static int32_t layers_that_fit(srv_models *ms, const hl_loaded *lm, int32_t step_tokens) {
    hl_backend_mem mem = {0};
    ms->be->ops->memory(ms->be, NULL, &mem);
    const hl_hparams *hp = hl_model_hparams(lm->model);
    const hl_plan *plan = hl_model_plan(lm->model);
    int64_t per_layer = hp->n_layer > 0 ? (int64_t)plan->weight_bytes / hp->n_layer : 1;
    int64_t scratch = (int64_t)hl_plan_buffer_bytes(plan, step_tokens > 0 ? step_tokens : 512);
    /* what is not in the layers (output matrix, embeddings read by the GPU) goes with the last part */
    int64_t rest = (int64_t)hl_model_weight_bytes(lm->model) - per_layer * hp->n_layer;
    int64_t room = (int64_t)mem.free - scratch - (rest > 0 ? rest : 0);
    int64_t n = per_layer > 0 && room > 0 ? room / (per_layer + per_layer / 4) : 0; /* a quarter more for its KV */
    return (int32_t)(n > hp->n_layer ? hp->n_layer : n);
}

/* Where a model goes before its engine is made: the one rule load_model
 * applies and show predicts (srv_models_placement). The engine may still
 * refuse it: then load_model falls back (fewer layers, or the CPU). */
typedef struct {
    hl_backend *backend;      /* runs the model (its last num_gpu layers when offload_rest is set) */
    hl_backend *offload_rest; /* the CPU running the first layers (partial offload), or NULL */
    int32_t num_gpu;          /* layers on backend under offload_rest; -1 otherwise */
} placement;

/* num_gpu as a load resolves it: the request's, else the Modelfile's
 * PARAMETER, else every layer (-1); a count that covers every layer is -1
 * too, so the two spellings of "all" are one placement. */
static int32_t resolve_num_gpu(int32_t requested, const srv_opts *params, int32_t n_layer) {
    int32_t n = requested;
    if (n == SRV_NUM_GPU_UNSET) n = params && (params->set & SRV_O_NGPU) ? params->num_gpu : -1;
    return n < 0 || (n_layer > 0 && n >= n_layer) ? -1 : n;
}

static placement place(const srv_models *ms, int32_t num_gpu, int32_t n_layer) {
    placement w = {.backend = ms->be, .offload_rest = NULL, .num_gpu = -1};
    if (ms->be == ms->cpu) return w;
    if (num_gpu == 0) w.backend = ms->cpu;
    else if (num_gpu > 0 && num_gpu < n_layer) w.offload_rest = ms->cpu, w.num_gpu = num_gpu;
    return w;
}

static int load_model(srv_models *ms, srv_model *m, const char *name, int is_path, int32_t num_gpu, hl_err *err) {
    int rc;
    if (is_path) {
        m->path = strdup(m->key);
        const char *base = strrchr(m->key, '/');
        m->name = strdup(base ? base + 1 : m->key);
    } else {
        if (!ms->st) return hl_err_set(err, HL_ENOENT, "model \"%s\" not found: the model store is unavailable", name);
        rc = store_resolve(ms->st, name, &m->sm, err);
        if (rc) {
            if (rc == HL_ENOENT) hl_err_set(err, HL_ENOENT, "model \"%s\" not found, try pulling it first", name);
            return rc;
        }
        m->from_store = 1;
        m->path = strdup(m->sm.model_path ? m->sm.model_path : "");
        m->name = strdup(m->sm.info.name);
        if (m->sm.params_json) {
            struct json_object *pj;
            if (srv_json_parse(m->sm.params_json, strlen(m->sm.params_json), &pj, err) == 0) {
                rc = srv_parse_options(pj, &m->params, err);
                json_object_put(pj);
                if (rc) return hl_err_prefix(err, "model \"%s\" parameters: ", name);
            }
        }
        if (m->sm.messages_json && (rc = load_mf_messages(m, err))) return hl_err_prefix(err, "model \"%s\" messages: ", name);
        if (!m->sm.model_path) return hl_err_set(err, HL_EINVAL, "model \"%s\" has no model layer", name);
    }
    if (!m->path || !m->name) return hl_err_set(err, HL_ENOMEM, "out of memory");
    rc = hl_loaded_open(&m->lm, m->path, err);
    if (rc) return rc;
    hl_engine_params p = hl_engine_default_params();
    const srv_config *c = ms->cfg;
    p.backend = ms->be;
    p.pool = ms->pool;
    p.kv_bytes = (size_t)(c->kv_bytes > 0 ? c->kv_bytes : auto_kv_bytes());
    if (c->kv_bytes <= 0 && hl_backend_is_gpu(ms->be)) p.kv_bytes = gpu_kv_bytes(ms, m->lm, p.step_tokens);
    p.max_seqs = c->max_seqs;
    p.max_queue = c->max_queue;
    /* the context requests get unless they say: the Modelfile's, else the server's (LongRoPE chooses by it) */
    p.num_ctx = (m->params.set & SRV_O_NCTX) && m->params.num_ctx > 0 ? m->params.num_ctx : c->num_ctx;
    if (c->block_size > 0) p.block_size = c->block_size;
    if (c->step_tokens > 0) p.step_tokens = c->step_tokens;
    p.prefix_cache = c->prefix_cache;
    p.kv_type = (hl_type)c->kv_type;
    if (c->num_draft > 0) p.max_draft = c->num_draft;
    const int32_t n_layer = hl_model_hparams(m->lm->model)->n_layer;
    m->num_gpu = resolve_num_gpu(num_gpu, &m->params, n_layer);
    const placement where = place(ms, m->num_gpu, n_layer);
    p.backend = where.backend, p.offload_rest = where.offload_rest, p.num_gpu = where.num_gpu;
    if (p.backend == ms->cpu) p.kv_bytes = (size_t)(c->kv_bytes > 0 ? c->kv_bytes : auto_kv_bytes());
    rc = hl_engine_new(&m->eng, m->lm, &p, err);
    if (rc == HL_ENOMEM && ms->auto_backend && p.backend != ms->cpu && m->num_gpu < 0) {
        /* auto, and the GPU cannot hold the whole model: as many layers as fit there, the rest on the CPU */
        char why[1024];
        snprintf(why, sizeof why, "%s", err->msg);
        /* from the estimate down, until the backend takes a placement */
        for (int32_t fit = layers_that_fit(ms, m->lm, p.step_tokens); fit > 0 && rc == HL_ENOMEM; fit = fit * 3 / 4) {
            p.offload_rest = ms->cpu, p.num_gpu = fit;
            p.kv_bytes = gpu_kv_bytes(ms, m->lm, p.step_tokens) / 2;
            if ((rc = hl_engine_new(&m->eng, m->lm, &p, err)) == 0)
                hl_warn("%s: %s; offloading %d of %d layers to the GPU, the rest on the CPU", m->name, why, fit, n_layer);
        }
    }
    if ((rc == HL_ENOTSUP || (rc == HL_ENOMEM && ms->auto_backend)) && p.backend != ms->cpu) {
        /* the configured backend lacks an op or a weight type, or (auto) the
         * GPU's memory cannot hold even part of the model: the CPU runs everything */
        hl_warn("%s: %s; running it on the CPU", m->name, err ? err->msg : "backend cannot run it");
        p.backend = ms->cpu;
        p.offload_rest = NULL, p.num_gpu = -1;
        p.kv_bytes = (size_t)(c->kv_bytes > 0 ? c->kv_bytes : auto_kv_bytes());
        rc = hl_engine_new(&m->eng, m->lm, &p, err);
    }
    if (rc) return rc;
    int32_t gpu_layers = 0;
    size_t gpu_weights = 0;
    hl_engine_gpu_share(m->eng, &gpu_layers, &gpu_weights);
    m->on_gpu = gpu_layers > 0 || hl_backend_is_gpu(p.backend);
    /* what the model occupies, as Ollama counts it: its weights and the KV
     * cache of one full default context; the pool reserved for all sequences
     * is in /metrics (hyperlama_kv_pool_bytes) */
    hl_engine_metrics em;
    hl_engine_get_metrics(m->eng, &em);
    int32_t ctx = hl_engine_max_ctx(m->eng);
    if (c->num_ctx > 0 && c->num_ctx < ctx) ctx = c->num_ctx;
    int64_t pool_tokens = (int64_t)em.blocks_total * (int64_t)(p.block_size > 0 ? p.block_size : 16);
    m->kv_pool_bytes = (int64_t)p.kv_bytes;
    m->size_bytes = (int64_t)hl_model_weight_bytes(m->lm->model) +
                    (pool_tokens > 0 ? (int64_t)((double)p.kv_bytes * (double)ctx / (double)pool_tokens) : 0);
    /* in GPU memory: the weights the GPU holds and its layers' share of the KV */
    int64_t ctx_kv = m->size_bytes - (int64_t)hl_model_weight_bytes(m->lm->model);
    m->vram_bytes = !m->on_gpu ? 0
                    : gpu_layers >= n_layer ? m->size_bytes
                                            : (int64_t)gpu_weights + (n_layer > 0 ? ctx_kv * gpu_layers / n_layer : 0);
    if (m->vram_bytes > m->size_bytes) m->vram_bytes = m->size_bytes;
    hl_info("loaded %s (%s) in %.0f ms, context %d, backend %s", m->name, m->path, (double)m->lm->load_ns / 1e6,
            hl_engine_max_ctx(m->eng), hl_engine_backend_name(m->eng));
    return 0;
}

int srv_models_get(srv_models *ms, const char *name, int32_t num_gpu, srv_model **out, hl_err *err) {
    *out = NULL;
    char key[4096];
    int is_path = 0;
    int rc = srv_model_key(name, key, sizeof key, &is_path, err);
    if (rc) return rc == HL_EINVAL ? hl_err_set(err, HL_ENOENT, "model \"%s\" not found: %s", name, err ? err->msg : "") : rc;
    pthread_mutex_lock(&ms->m);
    for (;;) {
        srv_model *m;
        for (m = ms->head; m; m = m->next)
            if (!strcmp(m->key, key)) break;
        if (m && m->loading) {
            pthread_cond_wait(&ms->cv, &ms->m);
            continue;
        }
        if (m && num_gpu != SRV_NUM_GPU_UNSET && ms->be != ms->cpu &&
            resolve_num_gpu(num_gpu, &m->params, hl_model_hparams(m->lm->model)->n_layer) != m->num_gpu) {
            if (m->refs) { /* in use: it keeps its placement (waiting here would hold an HTTP thread) */
                hl_debug("%s: num_gpu %d asked while it runs with %d: kept", m->name, num_gpu, m->num_gpu);
            } else { /* another placement: reload it (Ollama does the same) */
                unlink_model(ms, m);
                pthread_mutex_unlock(&ms->m);
                model_free(m);
                pthread_mutex_lock(&ms->m);
                continue;
            }
        }
        if (m) {
            m->refs++;
            m->last_used_ns = hl_now_ns();
            pthread_mutex_unlock(&ms->m);
            *out = m;
            return 0;
        }
        /* make room: unload the least recently used idle model */
        int n = 0;
        srv_model *lru = NULL;
        for (srv_model *x = ms->head; x; x = x->next) {
            n++;
            if (!x->refs && !x->loading && (!lru || x->last_used_ns < lru->last_used_ns)) lru = x;
        }
        if (n >= ms->cfg->max_loaded) {
            if (!lru) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&ms->cv, &ms->m, &ts);
                continue; /* a model in use will become idle */
            }
            unlink_model(ms, lru);
            pthread_mutex_unlock(&ms->m);
            model_free(lru);
            pthread_mutex_lock(&ms->m);
            continue;
        }
        m = calloc(1, sizeof *m);
        if (!m || !(m->key = strdup(key))) {
            free(m);
            pthread_mutex_unlock(&ms->m);
            return hl_err_set(err, HL_ENOMEM, "out of memory");
        }
        pthread_mutex_init(&m->draft_mu, NULL);
        m->loading = 1;
        m->keep_alive_ns = ms->cfg->keep_alive_ns;
        m->next = ms->head;
        ms->head = m;
        atomic_fetch_add(&ms->n_loading, 1);
        pthread_mutex_unlock(&ms->m);
        rc = load_model(ms, m, name, is_path, num_gpu, err);
        atomic_fetch_sub(&ms->n_loading, 1);
        pthread_mutex_lock(&ms->m);
        m->loading = 0;
        if (rc) {
            unlink_model(ms, m);
            pthread_cond_broadcast(&ms->cv);
            pthread_mutex_unlock(&ms->m);
            model_free(m);
            return rc;
        }
        m->refs = 1;
        m->last_used_ns = hl_now_ns();
        set_expiry(m, m->keep_alive_ns);
        pthread_cond_broadcast(&ms->cv);
        pthread_mutex_unlock(&ms->m);
        *out = m;
        return 0;
    }
}

void srv_models_placement(srv_models *ms, const char *key, const srv_opts *params, int64_t weight_bytes,
                          int32_t n_layer, char *out, size_t cap) {
    pthread_mutex_lock(&ms->m);
    for (srv_model *m = ms->head; m; m = m->next)
        if (!m->loading && m->eng && !strcmp(m->key, key)) {
            snprintf(out, cap, "%s (loaded)", hl_engine_backend_name(m->eng));
            pthread_mutex_unlock(&ms->m);
            return;
        }
    pthread_mutex_unlock(&ms->m);
    /* as load_model would place it */
    const placement where = place(ms, resolve_num_gpu(SRV_NUM_GPU_UNSET, params, n_layer), n_layer);
    const char *be = hl_backend_name(ms->be);
    hl_backend_mem mem = {0};
    ms->be->ops->memory(ms->be, NULL, &mem);
    if (ms->be == ms->cpu) {
        snprintf(out, cap, "cpu");
    } else if (where.backend == ms->cpu) {
        snprintf(out, cap, "cpu (num_gpu 0)");
    } else if (where.offload_rest) {
        snprintf(out, cap, "%s on %s (%d of %d layers, the rest on cpu)", be, mem.where, where.num_gpu, n_layer);
    } else if (weight_bytes > 0 && (uint64_t)weight_bytes > mem.free) {
        char need[32], have[32];
        hl_mem_bytes(weight_bytes, need, sizeof need);
        hl_mem_bytes((int64_t)mem.free, have, sizeof have);
        snprintf(out, cap, "%s on %s, %s: its weights (%s) exceed the %s it may take", be, mem.where,
                 ms->auto_backend ? "partly (the layers that fit; the rest on cpu)" : "refused", need, have);
    } else {
        snprintf(out, cap, "%s on %s (all layers)", be, mem.where);
    }
}

/* Loads the draft behind key for m; fills d (d->dm NULL and d->error on
 * refusal). Returns the error code. */
static int load_draft(srv_models *ms, srv_model *m, const char *name, const char *key, int is_path, srv_draft *d) {
    hl_err err = {0};
    store_model sm = {0};
    const char *path = key;
    int rc = 0;
    if (!is_path) {
        rc = ms->st ? store_resolve(ms->st, name, &sm, &err) : hl_err_set(&err, HL_ENOENT, "the model store is unavailable");
        if (!rc && !sm.model_path) rc = hl_err_set(&err, HL_EINVAL, "it has no model layer");
        path = sm.model_path;
    }
    if (!rc) rc = hl_loaded_open(&d->lm, path, &err);
    if (rc) hl_err_prefix(&err, "draft model \"%s\": ", name);
    if (!rc) {
        hl_draft_params p = hl_draft_default_params();
        /* the target's num_gpu places the draft too; a target that runs on
         * the CPU (num_gpu 0, or the GPU refused it) keeps its draft there */
        const placement where = m->on_gpu ? place(ms, m->num_gpu, hl_model_hparams(d->lm->model)->n_layer)
                                          : (placement){.backend = ms->cpu, .offload_rest = NULL, .num_gpu = -1};
        p.backend = where.backend, p.offload_rest = where.offload_rest, p.num_gpu = where.num_gpu;
        p.kv_type = (hl_type)ms->cfg->kv_type;
        p.max_seqs = ms->cfg->max_seqs;
        if (ms->cfg->step_tokens > 0) p.step_tokens = ms->cfg->step_tokens;
        rc = hl_draft_model_new(&d->dm, d->lm, m->lm, &p, &err);
        if ((rc == HL_ENOTSUP || (rc == HL_ENOMEM && ms->auto_backend)) && p.backend != ms->cpu) {
            hl_warn("draft model \"%s\": %s; running it on the CPU", name, err.msg);
            p.backend = ms->cpu, p.offload_rest = NULL, p.num_gpu = -1;
            rc = hl_draft_model_new(&d->dm, d->lm, m->lm, &p, &err);
        }
    }
    store_model_free(&sm);
    if (rc) {
        hl_loaded_free(d->lm);
        d->lm = NULL;
        d->dm = NULL;
        snprintf(d->error, sizeof d->error, "%s", err.msg);
        hl_warn("%s", d->error);
        return rc;
    }
    hl_info("draft model %s (%s) for %s loaded, backend %s", name, path, m->name, hl_draft_model_backend_name(d->dm));
    return 0;
}

int srv_model_draft(srv_models *ms, srv_model *m, const char *name, hl_draft_model **out, hl_err *err) {
    *out = NULL;
    char key[4096];
    int is_path = 0;
    if (srv_model_key(name, key, sizeof key, &is_path, err))
        return hl_err_set(err, HL_ENOENT, "draft model \"%s\" not found", name);
    pthread_mutex_lock(&m->draft_mu);
    srv_draft *d = m->drafts;
    while (d && strcmp(d->key, key)) d = d->next;
    if (!d) {
        d = calloc(1, sizeof *d);
        if (!d || !(d->key = strdup(key))) {
            free(d);
            pthread_mutex_unlock(&m->draft_mu);
            return hl_err_set(err, HL_ENOMEM, "out of memory");
        }
        if (load_draft(ms, m, name, key, is_path, d) == HL_ENOENT) {
            /* not there (yet): nothing to remember, it may be pulled */
            hl_err_set(err, HL_ENOENT, "%s", d->error);
            free(d->key);
            free(d);
            pthread_mutex_unlock(&m->draft_mu);
            return HL_ENOENT;
        }
        d->next = m->drafts;
        m->drafts = d;
    }
    int rc = d->dm ? 0 : hl_err_set(err, HL_EINVAL, "%s", d->error);
    *out = d->dm;
    pthread_mutex_unlock(&m->draft_mu);
    return rc;
}

void srv_models_put(srv_models *ms, srv_model *m, int has_keep_alive, int64_t ka) {
    if (!m) return;
    srv_model *dead = NULL;
    pthread_mutex_lock(&ms->m);
    if (has_keep_alive) m->keep_alive_ns = ka;
    m->refs--;
    m->last_used_ns = hl_now_ns();
    set_expiry(m, m->keep_alive_ns);
    if (m->refs == 0 && m->keep_alive_ns == 0) {
        unlink_model(ms, m);
        dead = m;
    }
    pthread_cond_broadcast(&ms->cv);
    pthread_mutex_unlock(&ms->m);
    model_free(dead);
}

int srv_models_unload(srv_models *ms, const char *name) {
    char key[4096];
    int is_path;
    if (srv_model_key(name, key, sizeof key, &is_path, NULL)) return 0;
    srv_model *dead = NULL;
    pthread_mutex_lock(&ms->m);
    for (srv_model *m = ms->head; m; m = m->next)
        if (!strcmp(m->key, key) && !m->loading) {
            m->keep_alive_ns = 0;
            if (!m->refs) {
                unlink_model(ms, m);
                dead = m;
            }
            break;
        }
    pthread_mutex_unlock(&ms->m);
    model_free(dead);
    return dead != NULL;
}

void srv_models_each(srv_models *ms, void (*fn)(void *, srv_model *), void *ctx) {
    pthread_mutex_lock(&ms->m);
    for (srv_model *m = ms->head; m; m = m->next)
        if (!m->loading) fn(ctx, m);
    pthread_mutex_unlock(&ms->m);
}

static void *reaper_main(void *arg) {
    srv_models *ms = arg;
    pthread_mutex_lock(&ms->m);
    while (!ms->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 250000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&ms->cv, &ms->m, &ts);
        int64_t now = hl_now_ns();
        for (srv_model *m = ms->head; m; m = m->next) {
            if (m->loading || m->refs || m->expires_ns > now) continue;
            unlink_model(ms, m);
            pthread_mutex_unlock(&ms->m);
            model_free(m);
            pthread_mutex_lock(&ms->m);
            break; /* the list changed: look again next round */
        }
    }
    pthread_mutex_unlock(&ms->m);
    return NULL;
}
