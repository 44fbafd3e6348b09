/* The mixtures of experts' side of the Hugging Face converter: the routing
 * config.json describes (expert counts; every layer sparse; the family's
 * renormalization of the top-k weights, which our arch fixes) and the expert
 * tensors: the hub's one matrix per expert stacked into GGUF's 3-D
 * ffn_*_exps (gathered from the mappings only when the file is written), and
 * gpt-oss's one fused tensor per kind rearranged into GGUF's rows. */
#include "store/convert_internal.h"

#include <stdlib.h>
#include <string.h>

/* Mixtures of experts: counts, and the routing our arch runs (every layer
 * sparse, the family's renormalization of the top-k weights). */
int store_cv_read_moe(const arch_def *a, const char *hf, json_object *cfg, hp *h, hl_err *err) {
    int rc;
    json_object *v;
    const char *ne_key = json_object_object_get_ex(cfg, "num_local_experts", &v) ? "num_local_experts" : "num_experts";
    if ((rc = store_cv_cfg_int(cfg, ne_key, -1, &h->n_exp, err)) || (rc = store_cv_cfg_int(cfg, "num_experts_per_tok", -1, &h->n_exp_used, err)) ||
        (rc = store_cv_cfg_int(cfg, "moe_intermediate_size", h->ff, &h->ff_exp, err)))
        return rc;
    if (h->n_exp > 1024 || h->n_exp_used > h->n_exp)
        return hl_err_set(err, HL_EINVAL, "config.json: %lld experts, %lld per token (at most 1024, and no more per token than there are)",
                          (long long)h->n_exp, (long long)h->n_exp_used);
    if ((a->f & F_SHEXP) && (rc = store_cv_cfg_int(cfg, "shared_expert_intermediate_size", -1, &h->ff_sh, err))) return rc;
    int64_t step = 1;
    if ((rc = store_cv_cfg_int(cfg, "decoder_sparse_step", 1, &step, err))) return rc;
    json_object *mlp_only;
    if (step != 1 || (json_object_object_get_ex(cfg, "mlp_only_layers", &mlp_only) && json_object_is_type(mlp_only, json_type_array) &&
                      json_object_array_length(mlp_only) > 0))
        return hl_err_set(err, HL_ENOTSUP, "config.json: dense layers between the sparse ones (decoder_sparse_step %lld, mlp_only_layers) "
                                           "are not supported for %s", (long long)step, hf);
    int norm = store_cv_cfg_bool(cfg, "norm_topk_prob", 0);
    if (a->norm_topk >= 0 && norm != a->norm_topk)
        return hl_err_set(err, HL_ENOTSUP, "config.json: norm_topk_prob %s is not supported for %s (our %s %s the top-k weights)",
                          norm ? "true" : "false", hf, a->name, a->norm_topk ? "renormalizes" : "does not renormalize");
    if (json_object_object_get_ex(cfg, "clip_qkv", &v) && v)
        return hl_err_set(err, HL_ENOTSUP, "config.json: clip_qkv is not supported for %s", hf);
    return HL_OK;
}

/* The n_exp per-expert matrices of one layer row stacked into the 3-D GGUF
 * tensor (ne = {cols, rows, n_exp}: expert e is slice e), gathered at write
 * time from the mappings. Every expert must be present with the row's shape
 * and the first expert's dtype. */
int store_cv_add_stack(gguf_writer *w, const st_set *st, int64_t l, const tmap *m, const char *gname, const hp *h,
                     hl_err *err) {
    int64_t er = store_cv_dim(h, m->rows), ec = store_cv_dim(h, m->cols);
    const void **parts = malloc((size_t)h->n_exp * sizeof *parts);
    if (!parts) return hl_err_set(err, HL_ENOMEM, "out of memory");
    const st_tensor *first = NULL;
    char hn[256];
    int rc = HL_OK;
    for (int64_t e = 0; e < h->n_exp && !rc; e++) {
        store_cv_hf_name(hn, sizeof hn, l, m, e);
        const st_tensor *t = st_find(st, hn);
        if (!t)
            rc = hl_err_set(err, HL_EINVAL, "tensor %s is missing (expert %lld of %lld; a shard missing from the index?)", hn,
                            (long long)e, (long long)h->n_exp);
        else if (t->n_dims != 2)
            rc = hl_err_set(err, HL_EINVAL, "tensor %s has %d dims, config.json implies [%lld, %lld]", hn, t->n_dims, (long long)er,
                            (long long)ec);
        else if (t->shape[0] != er || t->shape[1] != ec)
            rc = hl_err_set(err, HL_EINVAL, "tensor %s has shape [%lld, %lld], config.json implies [%lld, %lld]", hn,
                            (long long)t->shape[0], (long long)t->shape[1], (long long)er, (long long)ec);
        else if (first && t->type != first->type)
            rc = hl_err_set(err, HL_EINVAL, "tensor %s is %s but expert 0's is %s (experts are stacked into one tensor)", hn,
                            hl_type_name(t->type), hl_type_name(first->type));
        else {
            if (!first) first = t;
            parts[e] = t->data;
        }
    }
    if (!rc) {
        int64_t ne[3] = {ec, er, h->n_exp};
        rc = gguf_add_tensor_parts(w, gname, first->type, 3, ne, parts, first->size, (uint32_t)h->n_exp, err);
    }
    free(parts);
    return rc;
}

/* gpt-oss's experts, all in one HF tensor per kind, rearranged into GGUF's
 * per-expert row layout (the bytes keep their dtype; biases become F32):
 * gate_up_proj [n_exp, embd, 2 ff] is x @ W with gate and up interleaved
 * column by column, so GGUF gate row r of expert e is HF column 2r, up row r
 * column 2r + 1; down_proj [n_exp, ff, embd] is transposed per expert. */
int store_cv_add_oss(gguf_writer *w, const st_tensor *t, const char *gname, const hp *h, const tmap *m, hl_err *err) {
    int64_t ne_ = h->n_exp, er = store_cv_dim(h, m->rows), ec = m->cols ? store_cv_dim(h, m->cols) : 0;
    int nd = m->cols ? 3 : 2;
    if (t->n_dims != nd || t->shape[0] != ne_ || t->shape[1] != er || (m->cols && t->shape[2] != ec)) {
        if (m->cols)
            return hl_err_set(err, HL_EINVAL, "tensor %s has %d dims [%lld, %lld, ...], config.json implies [%lld, %lld, %lld]", t->name,
                              t->n_dims, (long long)t->shape[0], (long long)(t->n_dims > 1 ? t->shape[1] : 0), (long long)ne_,
                              (long long)er, (long long)ec);
        return hl_err_set(err, HL_EINVAL, "tensor %s has %d dims [%lld, ...], config.json implies [%lld, %lld]", t->name, t->n_dims,
                          (long long)t->shape[0], (long long)ne_, (long long)er);
    }
    int rc;
    if (!m->cols) { /* biases: [n_exp, n] F32, gate / up every other element */
        int64_t n = m->part == P_DOWN ? er : er / 2;
        float *v = malloc((size_t)(ne_ * n) * sizeof *v);
        if (!v) return hl_err_set(err, HL_ENOMEM, "out of memory");
        for (int64_t e = 0; e < ne_; e++)
            for (int64_t i = 0; i < n; i++) v[e * n + i] = store_cv_elem_f32(t, e * er + (m->part == P_DOWN ? i : 2 * i + m->part));
        int64_t ne[2] = {n, ne_};
        rc = gguf_add_tensor(w, gname, HL_TYPE_F32, 2, ne, v, (size_t)(ne_ * n) * sizeof *v, 0, err);
        free(v);
        return rc;
    }
    size_t es = st_type_size(t->type);
    uint8_t *o = malloc(t->size / (m->part == P_DOWN ? 1 : 2));
    if (!o) return hl_err_set(err, HL_ENOMEM, "out of memory");
    const uint8_t *src = t->data;
    int64_t ne[3];
    if (m->part != P_DOWN) { /* out[e][r][c] = in[e][c][2r + part]: ne {embd, ff, n_exp} */
        int64_t ff = ec / 2;
        for (int64_t e = 0; e < ne_; e++)
            for (int64_t r = 0; r < ff; r++)
                for (int64_t c = 0; c < er; c++)
                    memcpy(o + (size_t)((e * ff + r) * er + c) * es, src + (size_t)((e * er + c) * ec + 2 * r + m->part) * es, es);
        ne[0] = er, ne[1] = ff, ne[2] = ne_;
    } else { /* out[e][r][c] = in[e][c][r]: ne {ff, embd, n_exp} */
        for (int64_t e = 0; e < ne_; e++)
            for (int64_t r = 0; r < ec; r++)
                for (int64_t c = 0; c < er; c++)
                    memcpy(o + (size_t)((e * ec + r) * er + c) * es, src + (size_t)((e * er + c) * ec + r) * es, es);
        ne[0] = er, ne[1] = ec, ne[2] = ne_;
    }
    rc = gguf_add_tensor(w, gname, t->type, 3, ne, o, t->size / (m->part == P_DOWN ? 1 : 2), 0, err);
    free(o);
    return rc;
}

