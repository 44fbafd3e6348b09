/* `create --quantize`: rewrites an F32/F16/BF16 GGUF with quantized matrices.
 * Norms, biases (gpt-oss's expert biases are 2-D), the routers (ffn_gate_inp,
 * as llama.cpp keeps them) and other vectors stay as they are (F32 from our
 * converter); MXFP4 tensors (gpt-oss's experts
 * as the hub ships them) are kept as they are, whatever the target, as
 * llama.cpp and Ollama keep them, as are an encoder's token-type and
 * position tables (added to the embeddings, not multiplied); a tensor whose
 * rows do not fit the
 * target's block falls back to a smaller block type (or stays as it is). The
 * *_M / *_S / *_L mixes follow the idea of llama.cpp's: attention values and
 * the FFN down projection get more bits in "M" and "L", the output matrix
 * gets Q6_K. Rows are split across threads. */
#include "store/store_internal.h"

#include "gguf/gguf.h"
#include "quant/quant.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

typedef struct qspec {
    const char *name;
    int ftype;     /* general.file_type */
    hl_type base;  /* most matrices */
    hl_type more;  /* attn_v / ffn_down (== base for uniform types) */
    hl_type out;   /* output.weight */
} qspec;

static const qspec specs[] = {
    {"f32", 0, HL_TYPE_F32, HL_TYPE_F32, HL_TYPE_F32},
    {"f16", 1, HL_TYPE_F16, HL_TYPE_F16, HL_TYPE_F16},
    {"bf16", 32, HL_TYPE_BF16, HL_TYPE_BF16, HL_TYPE_BF16},
    {"q4_0", 2, HL_TYPE_Q4_0, HL_TYPE_Q4_0, HL_TYPE_Q6_K},
    {"q4_1", 3, HL_TYPE_Q4_1, HL_TYPE_Q4_1, HL_TYPE_Q6_K},
    {"q5_0", 8, HL_TYPE_Q5_0, HL_TYPE_Q5_0, HL_TYPE_Q6_K},
    {"q5_1", 9, HL_TYPE_Q5_1, HL_TYPE_Q5_1, HL_TYPE_Q6_K},
    {"q8_0", 7, HL_TYPE_Q8_0, HL_TYPE_Q8_0, HL_TYPE_Q8_0},
    {"q2_K", 10, HL_TYPE_Q2_K, HL_TYPE_Q3_K, HL_TYPE_Q6_K},
    {"q3_K_S", 11, HL_TYPE_Q3_K, HL_TYPE_Q3_K, HL_TYPE_Q6_K},
    {"q3_K_M", 12, HL_TYPE_Q3_K, HL_TYPE_Q4_K, HL_TYPE_Q6_K},
    {"q3_K_L", 13, HL_TYPE_Q3_K, HL_TYPE_Q5_K, HL_TYPE_Q6_K},
    {"q4_K_S", 14, HL_TYPE_Q4_K, HL_TYPE_Q4_K, HL_TYPE_Q6_K},
    {"q4_K_M", 15, HL_TYPE_Q4_K, HL_TYPE_Q6_K, HL_TYPE_Q6_K},
    {"q5_K_S", 16, HL_TYPE_Q5_K, HL_TYPE_Q5_K, HL_TYPE_Q6_K},
    {"q5_K_M", 17, HL_TYPE_Q5_K, HL_TYPE_Q6_K, HL_TYPE_Q6_K},
    {"q6_K", 18, HL_TYPE_Q6_K, HL_TYPE_Q6_K, HL_TYPE_Q6_K},
    {"iq4_nl", 25, HL_TYPE_IQ4_NL, HL_TYPE_IQ4_NL, HL_TYPE_Q6_K},
    {"iq4_xs", 30, HL_TYPE_IQ4_XS, HL_TYPE_IQ4_XS, HL_TYPE_Q6_K},
};

const char *store_quant_names(void) {
    return "f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K_S, q3_K_M, q3_K_L, q4_K_S, q4_K_M, q5_K_S, "
           "q5_K_M, q6_K, iq4_nl, iq4_xs";
}

/* When rows do not divide into 256-element superblocks. */
static hl_type fallback(hl_type t) {
    switch (t) {
    case HL_TYPE_Q2_K: case HL_TYPE_Q3_K: case HL_TYPE_Q4_K: return HL_TYPE_Q5_0;
    case HL_TYPE_Q5_K: return HL_TYPE_Q5_1;
    case HL_TYPE_Q6_K: return HL_TYPE_Q8_0;
    case HL_TYPE_IQ4_XS: return HL_TYPE_IQ4_NL;
    default: return t;
    }
}

typedef struct qjob {
    const gguf_tensor *t;
    hl_type dst;
    uint8_t *out;
    size_t src_row, dst_row;
    int64_t rows, row0, row1;
    int failed;
} qjob;

static void *qwork(void *arg) {
    qjob *j = arg;
    int64_t n = j->t->ne[0];
    float *tmp = malloc((size_t)n * sizeof *tmp);
    if (!tmp) {
        j->failed = 1;
        return NULL;
    }
    for (int64_t r = j->row0; r < j->row1; r++) {
        const uint8_t *src = (const uint8_t *)j->t->data + (size_t)r * j->src_row;
        if (hl_dequantize(j->t->type, src, tmp, n) != 0 ||
            hl_quantize(j->dst, tmp, j->out + (size_t)r * j->dst_row, n) != j->dst_row) {
            j->failed = 1;
            break;
        }
    }
    free(tmp);
    return NULL;
}

static hl_type choose(const qspec *q, const gguf_tensor *t) {
    /* kept: biases (gpt-oss's expert biases are 2-D) and the routers (a near-tie between experts must not be
     * decided by rounding; llama.cpp keeps ffn_gate_inp too) */
    size_t nl = strlen(t->name);
    if (t->n_dims < 2 || strstr(t->name, "norm") || (t->type == HL_TYPE_F32 && t->ne[1] == 1) || t->type == HL_TYPE_MXFP4 ||
        (nl > 5 && !strcmp(t->name + nl - 5, ".bias")) || strstr(t->name, "ffn_gate_inp"))
        return t->type;
    /* encoders' tables that are added, not multiplied (the loader reads token_types as F32) */
    if (!strcmp(t->name, "token_types.weight") || !strcmp(t->name, "position_embd.weight")) return t->type;
    hl_type want = q->base;
    if (!strcmp(t->name, "output.weight")) want = q->out;
    else if (strstr(t->name, "attn_v.weight") || strstr(t->name, "ffn_down.weight")) want = q->more;
    const hl_type_traits *tr = hl_type_get(want);
    if (t->ne[0] % tr->blck) {
        want = fallback(want);
        tr = hl_type_get(want);
    }
    if (t->ne[0] % tr->blck) return t->type; /* keep: nothing fits these rows */
    return want;
}

int store_requantize(const char *src_path, const char *dst_path, const char *qname, int threads,
                     const store_ops *ops, hl_err *err) {
    const qspec *q = NULL;
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        if (!strcasecmp(specs[i].name, qname)) q = &specs[i];
    if (!q) return hl_err_set(err, HL_EINVAL, "unknown quantization \"%s\" (want one of %s)", qname, store_quant_names());
    gguf_file *f;
    int rc = gguf_open(&f, src_path, err);
    if (rc) return rc;
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (t->n_dims >= 2 && t->type != HL_TYPE_F32 && t->type != HL_TYPE_F16 && t->type != HL_TYPE_BF16 && t->type != HL_TYPE_MXFP4) {
            /* the message first: the tensor's name lives in f */
            rc = hl_err_set(err, HL_EINVAL,
                            "can only quantize from an F32, F16 or BF16 model (MXFP4 tensors kept); tensor %s is %s (quantize the original weights instead)",
                            t->name, hl_type_name(t->type));
            gguf_close(f);
            return rc;
        }
    }
    if (threads <= 0) threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    gguf_writer *w = gguf_writer_new();
    if (!w) {
        gguf_close(f);
        return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    gguf_set_kv_from(w, f);
    gguf_set_u32(w, "general.file_type", (uint32_t)q->ftype);
    gguf_set_u32(w, "general.quantization_version", 2);
    int64_t nt = gguf_n_tensors(f);
    char status[96];
    snprintf(status, sizeof status, "quantizing F16 model to %s", q->name);
    for (int64_t i = 0; i < nt && rc == HL_OK; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        store_report(ops, status, NULL, nt, i);
        if (store_cancelled(ops)) {
            rc = hl_err_set(err, HL_EIO, "cancelled");
            break;
        }
        hl_type dst = choose(q, t);
        if (dst == t->type) {
            rc = gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->size, 1, err);
            continue;
        }
        int64_t rows = 1;
        for (uint32_t d = 1; d < t->n_dims; d++) rows *= t->ne[d];
        size_t dst_row = hl_row_size(dst, t->ne[0]);
        uint8_t *out = aligned_alloc(64, ((size_t)rows * dst_row + 63) / 64 * 64);
        if (!out) {
            rc = hl_err_set(err, HL_ENOMEM, "out of memory quantizing %s", t->name);
            break;
        }
        qjob jobs[64];
        pthread_t th[64];
        int nth = rows < threads ? (int)rows : threads;
        for (int k = 0; k < nth; k++) {
            jobs[k] = (qjob){t, dst, out, hl_row_size(t->type, t->ne[0]), dst_row, rows,
                             rows * k / nth, rows * (k + 1) / nth, 0};
            if (k > 0 && pthread_create(&th[k], NULL, qwork, &jobs[k]) != 0) qwork(&jobs[k]), th[k] = 0;
        }
        qwork(&jobs[0]);
        int failed = jobs[0].failed;
        for (int k = 1; k < nth; k++) {
            if (th[k]) pthread_join(th[k], NULL);
            failed |= jobs[k].failed;
        }
        if (failed) rc = hl_err_set(err, HL_EINVAL, "cannot quantize tensor %s to %s", t->name, hl_type_name(dst));
        else rc = gguf_add_tensor(w, t->name, dst, t->n_dims, t->ne, out, (size_t)rows * dst_row, 0, err);
        free(out);
    }
    if (rc == HL_OK) rc = gguf_write(w, dst_path, err);
    gguf_writer_free(w);
    gguf_close(f);
    return rc;
}
