/* Loading a model: reads the hyperparameters of the file's architecture,
 * then binds and validates every tensor the architecture's description lists
 * (presence, element type, exact shape), once, so the forward pass never
 * checks. Weights are borrowed from the GGUF mapping; nothing is copied. The
 * file's values are untrusted: every dimension is range-checked before it is
 * used to size anything. */
#include "model/model_impl.h"

#include "base/assert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Generous upper bounds; anything larger is a corrupt or hostile file. */
#define MAX_EMBD (1 << 16)
#define MAX_LAYER 1024
#define MAX_HEAD 1024
#define MAX_HEAD_DIM 1024
#define MAX_FF (1 << 20)
#define MAX_VOCAB (1 << 22)
#define MAX_EXPERT 1024

/* Reads an integer key "<arch>.<suffix>"; absent leaves *out unchanged unless
 * required. The value must lie in [lo, hi]. */
static int hp_int(const gguf_file *f, const char *arch, const char *suffix, int required, int64_t lo, int64_t hi,
                  int32_t *out, hl_err *err) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v;
    int rc = gguf_get_int(f, key, &v);
    if (rc == HL_ENOENT) {
        if (required) return hl_err_set(err, HL_EINVAL, "model metadata lacks %s", key);
        return 0;
    }
    if (rc) return hl_err_set(err, HL_EINVAL, "model metadata %s is not an integer", key);
    if (v < lo || v > hi)
        return hl_err_set(err, HL_EINVAL, "model metadata %s = %lld is out of range [%lld, %lld]", key, (long long)v,
                          (long long)lo, (long long)hi);
    *out = (int32_t)v;
    return 0;
}

static int hp_float(const gguf_file *f, const char *arch, const char *suffix, double lo, double hi, float *out,
                    hl_err *err) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    double v;
    int rc = gguf_get_float(f, key, &v);
    if (rc == HL_ENOENT) return 0;
    if (rc) return hl_err_set(err, HL_EINVAL, "model metadata %s is not a number", key);
    if (!(v >= lo && v <= hi))
        return hl_err_set(err, HL_EINVAL, "model metadata %s = %g is out of range [%g, %g]", key, v, lo, hi);
    *out = (float)v;
    return 0;
}

static void copy_str(char *dst, size_t cap, gguf_str s) {
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    memcpy(dst, s.ptr, n);
    dst[n] = 0;
}

static int read_hparams(hl_model *m, hl_err *err) {
    const gguf_file *f = m->file;
    hl_hparams *hp = &m->hp;
    const char *a = hp->arch;
    int rc;
    if ((rc = hp_int(f, a, "embedding_length", 1, 1, MAX_EMBD, &hp->n_embd, err)) ||
        (rc = hp_int(f, a, "block_count", 1, 1, MAX_LAYER, &hp->n_layer, err)) ||
        (rc = hp_int(f, a, "feed_forward_length", 1, 1, MAX_FF, &hp->n_ff, err)) ||
        (rc = hp_int(f, a, "attention.head_count", 1, 1, MAX_HEAD, &hp->n_head, err)))
        return rc;
    hp->n_ctx_train = 2048;
    hp->n_head_kv = hp->n_head;
    if ((rc = hp_int(f, a, "context_length", 0, 1, INT32_MAX, &hp->n_ctx_train, err)) ||
        (rc = hp_int(f, a, "attention.head_count_kv", 0, 1, MAX_HEAD, &hp->n_head_kv, err)))
        return rc;
    if (hp->n_head % hp->n_head_kv)
        return hl_err_set(err, HL_EINVAL, "model has %d attention heads, not a multiple of its %d KV heads", hp->n_head,
                          hp->n_head_kv);
    hp->head_dim_k = hp->n_embd % hp->n_head == 0 ? hp->n_embd / hp->n_head : 0;
    if ((rc = hp_int(f, a, "attention.key_length", 0, 1, MAX_HEAD_DIM, &hp->head_dim_k, err))) return rc;
    if (hp->head_dim_k <= 0)
        return hl_err_set(err, HL_EINVAL, "embedding length %d is not a multiple of the %d heads and %s.attention.key_length is absent",
                          hp->n_embd, hp->n_head, a);
    if (hp->head_dim_k > MAX_HEAD_DIM)
        return hl_err_set(err, HL_EINVAL, "head dimension %d is too large (max %d)", hp->head_dim_k, MAX_HEAD_DIM);
    hp->head_dim_v = hp->head_dim_k;
    if ((rc = hp_int(f, a, "attention.value_length", 0, 1, MAX_HEAD_DIM, &hp->head_dim_v, err))) return rc;
    hp->n_rot = hp->head_dim_k;
    if ((rc = hp_int(f, a, "rope.dimension_count", 0, 0, hp->head_dim_k, &hp->n_rot, err))) return rc;
    if (hp->n_rot % 2) return hl_err_set(err, HL_EINVAL, "%s.rope.dimension_count %d is odd", a, hp->n_rot);
    hp->norm_eps = 1e-5f;
    hp->rope_freq_base = 10000.0f;
    hp->rope_freq_scale = 1.0f;
    if ((rc = hp_float(f, a, "attention.layer_norm_rms_epsilon", 0.0, 1.0, &hp->norm_eps, err)) ||
        (rc = hp_float(f, a, "attention.layer_norm_epsilon", 0.0, 1.0, &hp->norm_eps, err)) ||
        (rc = hp_float(f, a, "rope.freq_base", 1.0, 1e12, &hp->rope_freq_base, err)))
        return rc;
    /* rope scaling: linear is a plain scale of the angles; llama3 comes as rope_freqs.weight. */
    char key[160];
    gguf_str st;
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    if (gguf_get_str(f, key, &st) == 0) {
        char type[32];
        copy_str(type, sizeof type, st);
        if (strcmp(type, "linear") == 0) {
            float factor = 1.0f;
            if ((rc = hp_float(f, a, "rope.scaling.factor", 1e-3, 1e6, &factor, err))) return rc;
            hp->rope_freq_scale = 1.0f / factor;
        } else if (strcmp(type, "longrope") == 0 || strcmp(type, "su") == 0) {
            hp->rope_longrope = 1;
        } else if (strcmp(type, "yarn") == 0) {
            hp->rope_yarn = 1;
            hp->rope_yarn_factor = 1.0f;
            hp->rope_yarn_beta_fast = 32.0f;
            hp->rope_yarn_beta_slow = 1.0f;
            hp->rope_yarn_attn_factor = 1.0f;
            if ((rc = hp_float(f, a, "rope.scaling.factor", 1.0, 1e6, &hp->rope_yarn_factor, err)) ||
                (rc = hp_int(f, a, "rope.scaling.original_context_length", 1, 1, INT32_MAX, &hp->rope_yarn_orig_ctx, err)) ||
                (rc = hp_float(f, a, "rope.scaling.yarn_beta_fast", 1e-3, 1e6, &hp->rope_yarn_beta_fast, err)) ||
                (rc = hp_float(f, a, "rope.scaling.yarn_beta_slow", 1e-3, 1e6, &hp->rope_yarn_beta_slow, err)) ||
                (rc = hp_float(f, a, "rope.scaling.yarn_attn_factor", 1e-3, 1e3, &hp->rope_yarn_attn_factor, err)))
                return rc;
        } else if (strcmp(type, "none") != 0 && strcmp(type, "llama3") != 0) {
            return hl_err_set(err, HL_ENOTSUP,
                              "rope scaling type '%s' is not supported (supported: none, linear, llama3, longrope, yarn)",
                              type);
        }
    }
    hp->rope_attn_factor = 1.0f;
    if ((rc = hp_float(f, a, "rope.scaling.attn_factor", 1e-3, 1e3, &hp->rope_attn_factor, err))) return rc;
    /* LongRoPE's switch point (phi3 files state no scaling type) */
    if (!hp->rope_yarn && (rc = hp_int(f, a, "rope.scaling.original_context_length", 0, 0, INT32_MAX, &hp->rope_long_after, err)))
        return rc;
    hp->rope_freq_base_swa = 10000.0f;
    if (m->arch->swa_period > 0 &&
        (rc = hp_int(f, a, "attention.sliding_window", 0, 0, INT32_MAX, &hp->n_swa, err)))
        return rc;
    if (m->arch->swa_rope_local && (rc = hp_float(f, a, "rope.freq_base_swa", 1.0, 1e12, &hp->rope_freq_base_swa, err)))
        return rc;
    if ((rc = hp_float(f, a, "attn_logit_softcapping", 0.0, 1e6, &hp->attn_softcap, err)) ||
        (rc = hp_float(f, a, "final_logit_softcapping", 0.0, 1e6, &hp->final_softcap, err)))
        return rc;
    /* embedding models: encoders always; a decoder when its file names a pooling */
    int32_t pooling = -1;
    if ((rc = hp_int(f, a, "pooling_type", 0, 0, 3, &pooling, err))) return rc;
    hp->embedding = m->arch->encoder || pooling > 0;
    hp->pooling = pooling >= 0 ? (hl_pooling)pooling : m->arch->encoder ? HL_POOLING_MEAN : HL_POOLING_NONE;
    hp->causal = !m->arch->encoder;
    if (m->arch->no_rope) hp->n_rot = 0;
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim_k);
    hp->embd_scale = m->arch->embd_scale_sqrt ? sqrtf((float)hp->n_embd) : 1.0f;
    /* granite's multipliers; absent elsewhere */
    if ((rc = hp_float(f, a, "attention.scale", 1e-6, 1e6, &hp->attn_scale, err)) ||
        (rc = hp_float(f, a, "embedding_scale", 1e-6, 1e6, &hp->embd_scale, err)) ||
        (rc = hp_float(f, a, "residual_scale", 1e-6, 1e6, &hp->residual_scale, err)) ||
        (rc = hp_float(f, a, "logit_scale", 1e-6, 1e6, &hp->logit_scale, err)))
        return rc;
    if (m->arch->moe) {
        if ((rc = hp_int(f, a, "expert_count", 1, 1, MAX_EXPERT, &hp->n_expert, err)) ||
            (rc = hp_int(f, a, "expert_used_count", 1, 1, hp->n_expert, &hp->n_expert_used, err)))
            return rc;
        hp->n_ff_exp = hp->n_ff;
        if ((rc = hp_int(f, a, "expert_feed_forward_length", 0, 1, MAX_FF, &hp->n_ff_exp, err)) ||
            (rc = hp_int(f, a, "expert_shared_feed_forward_length", 0, 1, MAX_FF, &hp->n_ff_shexp, err)))
            return rc;
    }
    hp->rope_style = m->arch->rope_style;
    hp->act = m->arch->act;
    if (gguf_get_str(f, "general.name", &st) == 0) copy_str(hp->name, sizeof hp->name, st);
    return 0;
}

static int64_t dim_value(const hl_hparams *hp, hl_dim d) {
    switch (d) {
    case HL_DIM_NONE: return 1;
    case HL_DIM_EMBD: return hp->n_embd;
    case HL_DIM_VOCAB: return hp->n_vocab;
    case HL_DIM_FF: return hp->n_ff;
    case HL_DIM_Q: return (int64_t)hp->n_head * hp->head_dim_k;
    case HL_DIM_K: return (int64_t)hp->n_head_kv * hp->head_dim_k;
    case HL_DIM_V: return (int64_t)hp->n_head_kv * hp->head_dim_v;
    case HL_DIM_O: return (int64_t)hp->n_head * hp->head_dim_v;
    case HL_DIM_HEAD_K: return hp->head_dim_k;
    case HL_DIM_ROT_HALF: return hp->n_rot / 2;
    case HL_DIM_CTX: return hp->n_ctx_train;
    case HL_DIM_ANY: return -1; /* bind_tensor accepts any positive count */
    case HL_DIM_HEADS: return hp->n_head;
    case HL_DIM_EXPERT: return hp->n_expert;
    case HL_DIM_FF_EXP: return hp->n_ff_exp;
    case HL_DIM_FF_SHEXP: return hp->n_ff_shexp;
    }
    HL_UNREACHABLE();
}

static void fmt_shape(char *buf, size_t cap, const int64_t *ne, int n) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int i = 0; i < n && o < cap; i++) o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)ne[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* Binds one tensor into *w after checking presence, shape and type. */
static int bind_tensor(hl_model *m, const char *name, const hl_arch_tensor *at, void *base, hl_err *err) {
    hl_wt whole, *w = at->views[0].rows != HL_DIM_NONE ? &whole : (hl_wt *)((char *)base + at->offset);
    const gguf_tensor *t = gguf_find_tensor(m->file, name);
    if (!t) {
        if (at->flags & HL_TF_OPTIONAL) return 0;
        return hl_err_set(err, HL_EINVAL, "tensor %s is missing (required by architecture %s)", name, m->arch->name);
    }
    int64_t want[3] = {dim_value(&m->hp, at->ne0), dim_value(&m->hp, at->ne1), dim_value(&m->hp, at->ne2)};
    if (want[1] < 0) want[1] = t->ne[1] > 0 ? t->ne[1] : 1;
    int want_dims = at->ne2 != HL_DIM_NONE ? 3 : at->ne1 == HL_DIM_NONE ? 1 : 2;
    int n_views = 0;
    const int vec_views = at->kind == HL_TK_VEC; /* a fused vector's views split its elements */
    if (at->views[0].rows != HL_DIM_NONE) {
        int64_t sum = 0;
        for (; n_views < HL_ARCH_MAX_VIEWS && at->views[n_views].rows != HL_DIM_NONE; n_views++)
            sum += dim_value(&m->hp, at->views[n_views].rows);
        if (vec_views) want[0] = sum;
        else want[1] = sum, want_dims = 2;
    }
    int ok = 1;
    for (uint32_t i = 0; i < GGUF_MAX_DIMS; i++) {
        int64_t e = i < 3 ? want[i] : 1;
        if (t->ne[i] != e) ok = 0;
    }
    if (!ok) {
        char got[96], exp[96];
        fmt_shape(got, sizeof got, t->ne, t->n_dims > 0 ? (int)t->n_dims : 1);
        fmt_shape(exp, sizeof exp, want, want_dims);
        return hl_err_set(err, HL_EINVAL, "tensor %s has shape %s, expected %s", name, got, exp);
    }
    switch (at->kind) {
    case HL_TK_VEC:
        if (t->type != HL_TYPE_F32)
            return hl_err_set(err, HL_ENOTSUP, "tensor %s has type %s, expected F32", name, hl_type_name(t->type));
        break;
    case HL_TK_MATMUL:
    case HL_TK_EMBD: {
        /* which types a backend multiplies is the backend's to say (supports()):
         * here only that the format is one we know how to read */
        const hl_type_traits *tr = hl_type_get(t->type);
        if (!tr || !tr->supported)
            return hl_err_set(err, HL_ENOTSUP, "tensor %s has type %s, which HyperLlama cannot read", name,
                              hl_type_name(t->type));
        break;
    }
    }
    size_t rb = hl_row_size(t->type, t->ne[0]);
    if (rb == 0 || (uint64_t)rb * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] > t->size)
        return hl_err_set(err, HL_EINVAL, "tensor %s: row length %lld does not fit type %s", name,
                          (long long)t->ne[0], hl_type_name(t->type));
    *w = (hl_wt){.data = t->data, .type = t->type, .ne0 = t->ne[0], .ne1 = t->ne[1],
                 .ne2 = at->ne2 != HL_DIM_NONE ? t->ne[2] : 0, .row_bytes = rb};
    snprintf(w->name, sizeof w->name, "%s", name);
    /* a step reads k of the n expert slices: count the active bytes (decode bound) */
    if (at->ne2 == HL_DIM_EXPERT)
        m->weight_bytes += (size_t)t->size / (size_t)m->hp.n_expert * (size_t)m->hp.n_expert_used;
    else if (at->kind != HL_TK_EMBD) m->weight_bytes += (size_t)t->size;
    /* a fused tensor: each view is a row range of it, bound in its own field */
    int64_t r0 = 0;
    for (int v = 0; v < n_views; v++) {
        const int64_t rows = dim_value(&m->hp, at->views[v].rows);
        hl_wt *vw = (hl_wt *)((char *)base + at->views[v].offset);
        if (vec_views)
            *vw = (hl_wt){.data = (const float *)t->data + r0, .type = t->type, .ne0 = rows, .ne1 = 1,
                          .row_bytes = (size_t)rows * sizeof(float)};
        else
            *vw = (hl_wt){.data = (const char *)t->data + (size_t)r0 * rb, .type = t->type, .ne0 = t->ne[0],
                          .ne1 = rows, .row_bytes = rb};
        snprintf(vw->name, sizeof vw->name, "%s[%lld:%lld]", name, (long long)r0, (long long)(r0 + rows));
        r0 += rows;
    }
    return 0;
}

static int bind_weights(hl_model *m, hl_err *err) {
    const hl_arch *a = m->arch;
    hl_hparams *hp = &m->hp;
    /* n_vocab comes from the embedding table: check its row length first. */
    const gguf_tensor *te = gguf_find_tensor(m->file, "token_embd.weight");
    if (!te) return hl_err_set(err, HL_EINVAL, "tensor token_embd.weight is missing");
    if (te->n_dims != 2 || te->ne[1] <= 0 || te->ne[1] > MAX_VOCAB) {
        char got[96];
        fmt_shape(got, sizeof got, te->ne, (int)te->n_dims);
        return hl_err_set(err, HL_EINVAL, "tensor token_embd.weight has shape %s, expected [%d, n_vocab]", got,
                          hp->n_embd);
    }
    hp->n_vocab = (int32_t)te->ne[1];
    int32_t vocab_key = hp->n_vocab;
    int rc = hp_int(m->file, hp->arch, "vocab_size", 0, 1, MAX_VOCAB, &vocab_key, err);
    if (rc) return rc;
    if (vocab_key != hp->n_vocab)
        return hl_err_set(err, HL_EINVAL, "%s.vocab_size is %d but token_embd.weight has %d rows", hp->arch, vocab_key,
                          hp->n_vocab);

    for (int i = 0; i < a->n_global; i++) {
        const hl_arch_tensor *at = &a->global[i];
        if ((rc = bind_tensor(m, at->name, at, &m->w, err))) return rc;
    }
    m->w.layers = calloc((size_t)hp->n_layer, sizeof *m->w.layers);
    if (!m->w.layers) return hl_err_set(err, HL_ENOMEM, "out of memory");
    for (int32_t l = 0; l < hp->n_layer; l++) {
        for (int i = 0; i < a->n_layer_tensors + a->n_layer_more; i++) {
            const hl_arch_tensor *at = i < a->n_layer_tensors ? &a->layer[i] : &a->layer_more[i - a->n_layer_tensors];
            char name[128];
            snprintf(name, sizeof name, at->name, (int)l);
            if ((rc = bind_tensor(m, name, at, &m->w.layers[l], err))) return rc;
        }
    }
    if (!m->w.output.data && !hp->embedding) {
        /* tied: the embedding table doubles as the output projection */
        m->w.output = m->w.token_embd;
        hp->tied_output = 1;
        m->weight_bytes += m->w.token_embd.row_bytes * (size_t)hp->n_vocab;
    }
    hp->has_rope_freqs = m->w.rope_freqs.data != NULL;
    if (hp->rope_longrope && !hp->has_rope_freqs)
        return hl_err_set(err, HL_EINVAL, "%s.rope.scaling.type is longrope but the file has no rope_factors_short.weight",
                          hp->arch);
    return 0;
}

/* YaRN (Peng et al. 2023, "YaRN: Efficient Context Window Extension"): the
 * dim pair i whose wavelength fits more than beta_fast rotations into the
 * original context keeps its frequency, one with fewer than beta_slow is
 * divided by the factor, and those between blend linearly in i. The dim
 * where r rotations fit: n_rot * ln(orig / (2 pi r)) / (2 ln base). */
static double yarn_corr_dim(double rotations, int32_t n_rot, double base, double orig) {
    return n_rot * log(orig / (rotations * 2.0 * M_PI)) / (2.0 * log(base));
}

static void yarn_freqs(const hl_model *m, double *inv_freq) {
    const hl_hparams *hp = &m->hp;
    const int32_t half = hp->n_rot / 2;
    const double base = hp->rope_freq_base, orig = hp->rope_yarn_orig_ctx, factor = hp->rope_yarn_factor;
    double lo = yarn_corr_dim(hp->rope_yarn_beta_fast, hp->n_rot, base, orig);
    double hi = yarn_corr_dim(hp->rope_yarn_beta_slow, hp->n_rot, base, orig);
    if (!m->arch->yarn_no_truncate) lo = floor(lo), hi = ceil(hi);
    lo = lo > 0 ? lo : 0;
    hi = hi < hp->n_rot - 1 ? hi : hp->n_rot - 1;
    if (hi == lo) hi += 0.001; /* a ramp of one step, not a division by zero */
    for (int32_t i = 0; i < half; i++) {
        const double extra = pow(base, -2.0 * i / hp->n_rot), inter = extra / factor;
        double ramp = (i - lo) / (hi - lo); /* 0: keep the frequency, 1: interpolate it */
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        inv_freq[i] = inter * ramp + extra * (1.0 - ramp);
    }
}

static int build_rope(hl_model *m, hl_err *err) {
    const hl_hparams *hp = &m->hp;
    int32_t half = hp->n_rot / 2;
    size_t n = half > 0 ? (size_t)half : 1;
    m->rope_inv_freq = calloc(n, sizeof(double));
    m->rope_inv_freq_swa = calloc(n, sizeof(double));
    m->layer_swa = calloc((size_t)hp->n_layer, 1);
    if (!m->rope_inv_freq || !m->rope_inv_freq_swa || !m->layer_swa) return hl_err_set(err, HL_ENOMEM, "out of memory");
    const float *factors = m->w.rope_freqs.data;
    for (int32_t i = 0; i < half; i++) {
        double f = (double)hp->rope_freq_scale * pow((double)hp->rope_freq_base, -2.0 * i / hp->n_rot);
        if (factors) {
            float d = factors[i];
            if (!(d > 0.0f) || !isfinite(d))
                return hl_err_set(err, HL_EINVAL, "rope_freqs.weight[%d] = %g is not a positive number", (int)i, d);
            f /= d;
        }
        m->rope_inv_freq[i] = f;
        /* gemma3's local layers keep the short-context rope: their own base,
         * no scaling; other sliding layers rotate as the global ones */
        m->rope_inv_freq_swa[i] =
            m->arch->swa_rope_local ? pow((double)hp->rope_freq_base_swa, -2.0 * i / hp->n_rot) : f;
    }
    /* LongRoPE's long factors, for contexts beyond the original one
     * (hl_model_plan_for chooses) */
    const float *lf = m->w.rope_factors_long.data;
    if (lf && hp->rope_long_after > 0) {
        if (!(m->rope_inv_freq_long = calloc(n, sizeof(double)))) return hl_err_set(err, HL_ENOMEM, "out of memory");
        for (int32_t i = 0; i < half; i++) {
            if (!(lf[i] > 0.0f) || !isfinite(lf[i]))
                return hl_err_set(err, HL_EINVAL, "rope_factors_long.weight[%d] = %g is not a positive number", (int)i, lf[i]);
            m->rope_inv_freq_long[i] = (double)hp->rope_freq_scale * pow((double)hp->rope_freq_base, -2.0 * i / hp->n_rot) / lf[i];
        }
    }
    if (hp->rope_yarn) {
        yarn_freqs(m, m->rope_inv_freq);
        if (!m->arch->swa_rope_local) memcpy(m->rope_inv_freq_swa, m->rope_inv_freq, n * sizeof(double));
        /* the magnitude YaRN gives cos and sin: whole heads rotating, it is
         * the square on the scores (the fused CPU step and every backend have
         * that); else the rope op scales the rotated dims */
        const double fa = hp->rope_yarn_factor;
        const float ms = (float)((fa > 1.0 ? 0.1 * log(fa) + 1.0 : 1.0) * hp->rope_yarn_attn_factor * hp->rope_attn_factor);
        if (ms != 1.0f) {
            if (hp->n_rot == hp->head_dim_k) m->hp.attn_scale *= ms * ms;
            else m->hp.rope_mscale = ms;
        }
    }
    int period = m->arch->swa_period;
    for (int32_t l = 0; hp->n_swa > 0 && period > 0 && l < hp->n_layer; l++)
        m->layer_swa[l] = period == 1 || (l + 1) % period != 0;
    return 0;
}

/* The plan for contexts beyond LongRoPE's original one: the same ops, their
 * rope rotating by the long factors' frequencies (phi3 rotates every layer
 * alike, so every rope op changes). */
static int build_plan_long(hl_model *m, hl_err *err) {
    if (!m->rope_inv_freq_long) return 0;
    const hl_plan *p = &m->plan;
    hl_plan *q = &m->plan_long;
    *q = *p;
    q->ops = malloc((size_t)p->n_ops * sizeof *q->ops);
    q->layer_ops = malloc(((size_t)p->n_layer + 1) * sizeof *q->layer_ops);
    if (!q->ops || !q->layer_ops) {
        free(q->ops);
        free(q->layer_ops);
        memset(q, 0, sizeof *q);
        return hl_err_set(err, HL_ENOMEM, "out of memory building the layer plan");
    }
    memcpy(q->ops, p->ops, (size_t)p->n_ops * sizeof *q->ops);
    memcpy(q->layer_ops, p->layer_ops, ((size_t)p->n_layer + 1) * sizeof *q->layer_ops);
    for (int32_t i = 0; i < q->n_ops; i++)
        if (q->ops[i].kind == HL_OP_ROPE) q->ops[i].p.rope.inv_freq = m->rope_inv_freq_long;
    return 0;
}

void hl_model_free(hl_model *m) {
    if (!m) return;
    free(m->w.layers);
    free(m->rope_inv_freq);
    free(m->rope_inv_freq_swa);
    free(m->rope_inv_freq_long);
    free(m->layer_swa);
    hl_plan_free(&m->plan);
    hl_plan_free(&m->plan_long);
    gguf_close(m->file);
    free(m);
}

int hl_model_load_gguf(hl_model **out, gguf_file *f, hl_err *err) {
    *out = NULL;
    hl_model *m = calloc(1, sizeof *m);
    if (!m) {
        gguf_close(f);
        return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    m->file = f;
    gguf_str as;
    int rc;
    if (gguf_get_str(f, "general.architecture", &as) != 0) {
        rc = hl_err_set(err, HL_EINVAL, "model metadata lacks general.architecture (a string)");
        goto fail;
    }
    copy_str(m->hp.arch, sizeof m->hp.arch, as);
    if (as.len >= sizeof m->hp.arch || !(m->arch = hl_arch_find(m->hp.arch))) {
        rc = hl_err_set(err, HL_ENOTSUP, "unsupported architecture '%.*s' (supported: %s)",
                        (int)(as.len > 64 ? 64 : as.len), as.ptr, hl_model_supported_archs());
        goto fail;
    }
    /* mixtral: a llama file with experts */
    int64_t n_exp = 0;
    if (m->arch == &hl_arch_llama && gguf_get_int(f, "llama.expert_count", &n_exp) == 0 && n_exp > 0)
        m->arch = &hl_arch_mixtral;
    if ((rc = read_hparams(m, err)) || (rc = bind_weights(m, err)) || (rc = build_rope(m, err))) goto fail;
    if (m->arch->hook && (rc = m->arch->hook(m, err))) goto fail;
    if ((rc = hl_plan_build(m, err)) || (rc = build_plan_long(m, err))) goto fail;
    *out = m;
    return 0;
fail:
    hl_model_free(m);
    return rc;
}

int hl_model_load(hl_model **out, const char *path, hl_err *err) {
    *out = NULL;
    gguf_file *f;
    int rc = gguf_open(&f, path, err);
    if (rc) return rc;
    rc = hl_model_load_gguf(out, f, err);
    if (rc) hl_err_prefix(err, "loading %s: ", path);
    return rc;
}

const hl_hparams *hl_model_hparams(const hl_model *m) { return &m->hp; }
int32_t hl_model_n_out(const hl_model *m) { return m->hp.embedding ? m->hp.n_embd : m->hp.n_vocab; }
const hl_plan *hl_model_plan(const hl_model *m) { return &m->plan; }
const hl_plan *hl_model_plan_for(const hl_model *m, int32_t n_ctx) {
    return m->plan_long.ops && n_ctx > m->hp.rope_long_after ? &m->plan_long : &m->plan;
}
const gguf_file *hl_model_gguf(const hl_model *m) { return m->file; }
size_t hl_model_weight_bytes(const hl_model *m) { return m->weight_bytes; }

hl_kv_params hl_model_kv_params(const hl_model *m, int32_t n_blocks, int32_t block_size) {
    return (hl_kv_params){
        .n_layer = m->hp.n_layer,
        .n_head_kv = m->hp.n_head_kv,
        .head_dim_k = m->hp.head_dim_k,
        .head_dim_v = m->hp.head_dim_v,
        .n_blocks = n_blocks,
        .block_size = block_size ? block_size : HL_KV_DEFAULT_BLOCK_SIZE,
        .type = HL_TYPE_F16,
    };
}
