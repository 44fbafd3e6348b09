/* The mixtures of experts' side of the Hugging Face converter: the routing
 * config.json describes (expert counts; every layer sparse; the family's
 * renormalization of the top-k weights, which our arch fixes) and the expert
 * tensors: the hub's one matrix per expert stacked into GGUF's 3-D
 * ffn_*_exps (gathered from the mappings only when the file is written), and
 * gpt-oss's one fused tensor per kind rearranged into GGUF's rows, either
 * from its BF16 layout or from the hub's MXFP4 blocks and scales (repacked
 * bit for bit into GGUF MXFP4). Both rearrangements are views: the writer
 * produces them one GGUF row at a time from the mappings as it writes the
 * file (gguf_add_tensor_fill), so no expert tensor is copied in memory. */
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
        else if ((rc = store_cv_need_float(t, err)))
            ;
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

/* One GGUF row (chunk) of gpt-oss's experts in the BF16 layout: GGUF row r
 * of expert e is HF column col(r) of expert e's [rows, cols] matrix. */
typedef struct oss_view {
    const uint8_t *src;
    size_t es;          /* element size */
    int64_t rows, cols; /* HF matrix per expert: rows are GGUF's columns */
    int64_t out_rows;   /* GGUF rows per expert */
    int part;
} oss_view;

static void oss_fill(const void *ctx, uint64_t chunk, void *dst) {
    const oss_view *v = ctx;
    int64_t e = (int64_t)chunk / v->out_rows, r = (int64_t)chunk % v->out_rows;
    int64_t col = v->part == P_DOWN ? r : 2 * r + v->part;
    const uint8_t *in = v->src + (size_t)(e * v->rows * v->cols + col) * v->es;
    uint8_t *o = dst;
    for (int64_t c = 0; c < v->rows; c++) memcpy(o + (size_t)c * v->es, in + (size_t)(c * v->cols) * v->es, v->es);
}

/* gpt-oss's experts, all in one HF tensor per kind, rearranged into GGUF's
 * per-expert row layout (the bytes keep their dtype; biases become F32):
 * gate_up_proj [n_exp, embd, 2 ff] is x @ W with gate and up interleaved
 * column by column, so GGUF gate row r of expert e is HF column 2r, up row r
 * column 2r + 1; down_proj [n_exp, ff, embd] is transposed per expert. */
int store_cv_add_oss(gguf_writer *w, const st_tensor *t, const char *gname, const hp *h, const tmap *m, hl_err *err) {
    int64_t ne_ = h->n_exp, er = store_cv_dim(h, m->rows), ec = m->cols ? store_cv_dim(h, m->cols) : 0;
    int nd = m->cols ? 3 : 2;
    int rc = store_cv_need_float(t, err);
    if (rc) return rc;
    if (t->n_dims != nd || t->shape[0] != ne_ || t->shape[1] != er || (m->cols && t->shape[2] != ec)) {
        if (m->cols)
            return hl_err_set(err, HL_EINVAL, "tensor %s has %d dims [%lld, %lld, ...], config.json implies [%lld, %lld, %lld]", t->name,
                              t->n_dims, (long long)t->shape[0], (long long)(t->n_dims > 1 ? t->shape[1] : 0), (long long)ne_,
                              (long long)er, (long long)ec);
        return hl_err_set(err, HL_EINVAL, "tensor %s has %d dims [%lld, ...], config.json implies [%lld, %lld]", t->name, t->n_dims,
                          (long long)t->shape[0], (long long)ne_, (long long)er);
    }
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
    /* gate / up: out[e][r][c] = in[e][c][2r + part], ne {embd, ff, n_exp}; down: out[e][r][c] = in[e][c][r], ne {ff, embd, n_exp} */
    oss_view v = {t->data, st_type_size(t->type), er, ec, m->part == P_DOWN ? ec : ec / 2, m->part};
    int64_t ne[3] = {er, v.out_rows, ne_};
    return gguf_add_tensor_fill(w, gname, t->type, 3, ne, oss_fill, &v, sizeof v, (size_t)er * v.es, (uint64_t)(ne_ * v.out_rows),
                                err);
}

/* One GGUF MXFP4 row (chunk) from the hub's blocks and scales: GGUF row r of
 * expert e is hub row r * stride + part (gate_up interleaves gate and up
 * rows); each GGUF block is the E8M0 scale byte (2^(e - 127), the same
 * value GGUF's doubled-e2m1 / 2^(e - 128) gives) followed by the 16 bytes
 * of nibbles reordered: the hub packs elements 2j (low nibble) and 2j + 1
 * (high) into byte j, GGUF elements j (low) and j + 16 (high). */
typedef struct mx_view {
    const uint8_t *blocks, *scales;
    int64_t nb;                 /* blocks per row */
    int64_t hub_rows, out_rows; /* per expert */
    int stride, part;
} mx_view;

static unsigned nib(const uint8_t *q, int k) { return k & 1 ? q[k >> 1] >> 4 : q[k >> 1] & 0x0f; }

static void mx_fill(const void *ctx, uint64_t chunk, void *dst) {
    const mx_view *v = ctx;
    int64_t e = (int64_t)chunk / v->out_rows, r = (int64_t)chunk % v->out_rows;
    int64_t hr = e * v->hub_rows + r * v->stride + v->part;
    const uint8_t *q = v->blocks + (size_t)(hr * v->nb) * 16, *sc = v->scales + (size_t)(hr * v->nb);
    uint8_t *o = dst;
    for (int64_t b = 0; b < v->nb; b++, q += 16, o += 17) {
        o[0] = sc[b];
        for (int j = 0; j < 16; j++) o[1 + j] = (uint8_t)(nib(q, j) | nib(q, j + 16) << 4);
    }
}

/* gpt-oss's experts as the hub ships them: <kind>_blocks U8 [n_exp, rows,
 * cols / 32, 16] and <kind>_scales U8 [n_exp, rows, cols / 32], rows x cols
 * the [out, in] of each expert (gate_up: 2 ff rows, gate and up
 * interleaved; down: embd rows), written as GGUF MXFP4 ffn_*_exps
 * {cols, rows (ff for gate / up), n_exp}, bit for bit. */
int store_cv_add_mxfp4(gguf_writer *w, const st_set *st, const st_tensor *b, const char *gname, const hp *h, const tmap *m,
                       hl_err *err) {
    int64_t ne_ = h->n_exp, er = store_cv_dim(h, m->rows), ec = store_cv_dim(h, m->cols);
    char sn[256];
    size_t n = strlen(b->name);
    if (n < 7 || n >= sizeof sn || strcmp(b->name + n - 7, "_blocks"))
        return hl_err_set(err, HL_EINVAL, "cannot happen: %s is not an MXFP4 blocks tensor", b->name);
    snprintf(sn, sizeof sn, "%.*s_scales", (int)(n - 7), b->name);
    const st_tensor *s = st_find(st, sn);
    if (!s) return hl_err_set(err, HL_EINVAL, "tensor %s is missing (MXFP4 blocks %s need their scales)", sn, b->name);
    if (ec % 32)
        return hl_err_set(err, HL_EINVAL, "tensor %s: rows of %lld values do not split into MXFP4 blocks of 32", b->name, (long long)ec);
    int64_t nb = ec / 32;
    if (b->type != ST_TYPE_U8 || s->type != ST_TYPE_U8)
        return hl_err_set(err, HL_EINVAL, "tensor %s is %s, MXFP4 blocks and scales are U8", b->type != ST_TYPE_U8 ? b->name : sn,
                          hl_type_name(b->type != ST_TYPE_U8 ? b->type : s->type));
    if (b->n_dims != 4 || b->shape[0] != ne_ || b->shape[1] != er || b->shape[2] != nb || b->shape[3] != 16)
        return hl_err_set(err, HL_EINVAL, "tensor %s has %d dims [%lld, %lld, ...], config.json implies [%lld, %lld, %lld, 16]", b->name,
                          b->n_dims, (long long)b->shape[0], (long long)(b->n_dims > 1 ? b->shape[1] : 0), (long long)ne_,
                          (long long)er, (long long)nb);
    if (s->n_dims != 3 || s->shape[0] != ne_ || s->shape[1] != er || s->shape[2] != nb)
        return hl_err_set(err, HL_EINVAL, "tensor %s has %d dims [%lld, %lld, ...], config.json implies [%lld, %lld, %lld]", sn, s->n_dims,
                          (long long)s->shape[0], (long long)(s->n_dims > 1 ? s->shape[1] : 0), (long long)ne_, (long long)er,
                          (long long)nb);
    int down = m->part == P_DOWN;
    mx_view v = {b->data, s->data, nb, er, down ? er : er / 2, down ? 1 : 2, down ? 0 : m->part};
    int64_t ne[3] = {ec, v.out_rows, ne_};
    return gguf_add_tensor_fill(w, gname, HL_TYPE_MXFP4, 3, ne, mx_fill, &v, sizeof v, (size_t)nb * 17, (uint64_t)(ne_ * v.out_rows),
                                err);
}
