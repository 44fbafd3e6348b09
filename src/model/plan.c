/* The layer plan: compiles a loaded model (its architecture's options, its
 * hparams and the tensors bound for it) into the backend-neutral op list of
 * backend/backend.h, once, at load. This is the only place that decides what
 * a block computes; backends only execute. Per block:
 *
 *   attn_in  = norm(x) * attn_norm                        (olmo2: none, x itself)
 *   q, k, v  = attn_in . wq|wk|wv (+ bq|bk|bv)
 *   q, k     = per-head norm (q_norm, k_norm)            when the arch has them
 *              (olmo2: over the whole projection)
 *   q, k     = rope (the layer's frequencies: global or sliding-window)
 *   kv_store (k, v) -> pool, this layer
 *   attn     = attention over the pool (causal; window in sliding layers;
 *              a per-head sink logit in the softmax when attn_sinks is bound)
 *   attn_out = attn . wo (+ bo)
 *   attn_out = norm(attn_out) * post_attn_norm           gemma, olmo2
 *   x       += attn_out
 *   ffn_in   = norm(x) * ffn_norm                        (olmo2: none, x itself)
 *   gate, up = ffn_in . ffn_gate | ffn_up
 *   ffn_act  = act(gate) * up                            SwiGLU / GeGLU
 *   ffn_out  = ffn_act . ffn_down
 *              (MoE archs: ffn_out = MOE(ffn_in): router, the family's
 *              gating, routed experts, optional shared expert)
 *   ffn_out  = norm(ffn_out) * post_ffn_norm             gemma, olmo2
 *   x       += ffn_out
 *
 * with EMBED before the blocks and GATHER (rows that want logits), the output
 * norm, the logits matmul and (granite) their scale or (gemma2) their
 * softcap after them (an embedding model stops at the output norm: its
 * output rows are hidden states; encoders, bert and nomic-bert, have a block
 * of their own, encoder_block below); residual adds scale the branch where granite says so;
 * attention scores are softcapped where the file says so. Architectures differ only in which
 * optional tensors they bind and in the options of their hl_arch. */
#include "model/model_impl.h"

#include "base/assert.h"

#include <stdlib.h>
#include <string.h>

/* Ops a block can emit at most; the op array is sized once from it. */
#define OPS_PER_BLOCK 24
#define OPS_OUTSIDE 8

typedef struct plan_builder {
    hl_plan *p;
    int32_t cap;
} plan_builder;

static hl_op *emit(plan_builder *pb, hl_op_kind kind, int32_t layer, hl_buf_id in, hl_buf_id in2, hl_buf_id out) {
    hl_plan *p = pb->p;
    HL_ASSERT(p->n_ops < pb->cap); /* cannot happen: sized for the most a block emits */
    hl_op *op = &p->ops[p->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->layer = layer;
    op->in = in;
    op->in2 = in2;
    op->out = out;
    op->n_in = p->bufs[in].width;
    op->n_out = p->bufs[out].width;
    return op;
}

static const hl_tensor *opt(const hl_wt *w) { return w->data ? w : NULL; }

static void norm(plan_builder *pb, int32_t layer, hl_buf_id in, hl_buf_id out, const hl_wt *w, int32_t group,
                 float eps) {
    hl_op *op = emit(pb, HL_OP_NORM, layer, in, HL_BUF_NONE, out);
    op->w = opt(w);
    op->p.norm.kind = HL_NORM_RMS;
    op->p.norm.eps = eps;
    op->p.norm.group = group;
}

static void matmul(plan_builder *pb, int32_t layer, hl_buf_id in, hl_buf_id out, const hl_wt *w, const hl_wt *b) {
    hl_op *op = emit(pb, HL_OP_MATMUL, layer, in, HL_BUF_NONE, out);
    op->w = w;
    op->b = b ? opt(b) : NULL;
}

static void rope(plan_builder *pb, int32_t layer, hl_buf_id buf, const hl_hparams *hp, int32_t n_head,
                 const double *inv_freq) {
    hl_op *op = emit(pb, HL_OP_ROPE, layer, buf, HL_BUF_NONE, buf);
    op->p.rope.style = hp->rope_style;
    op->p.rope.n_rot = hp->n_rot;
    op->p.rope.head_dim = hp->head_dim_k;
    op->p.rope.n_head = n_head;
    op->p.rope.inv_freq = inv_freq;
    op->p.rope.mscale = hp->rope_mscale;
}

static void set_buf(hl_plan *p, hl_buf_id b, int64_t width, int per_output) {
    p->bufs[b] = (hl_plan_buf){.name = hl_buf_name(b), .width = width, .per_output = per_output};
}

void hl_plan_free(hl_plan *p) {
    free(p->ops);
    free(p->layer_ops);
    memset(p, 0, sizeof *p);
}

/* An encoder block (bert, nomic-bert): post-norm, biases where the file has
 * them, bidirectional attention; rope only without a position table.
 *
 *   q, k, v  = x . wq|wk|wv (+ b)        (row views of a fused attn_qkv)
 *   q, k     = rope                      nomic-bert
 *   kv_store, attn (bidirectional over the sequence's tokens in the batch)
 *   x        = LN(x + attn . wo (+ bo)) * attn_out_norm + b
 *   ffn_act  = gelu(x . ffn_up + b)      bert
 *            | silu(x . ffn_gate) * (x . ffn_up)   nomic-bert
 *   x        = LN(x + ffn_act . ffn_down (+ b)) * layer_out_norm + b */
static void layer_norm(plan_builder *pb, int32_t layer, hl_buf_id buf, const hl_wt *w, const hl_wt *b, int32_t n,
                       float eps) {
    hl_op *op = emit(pb, HL_OP_NORM, layer, buf, HL_BUF_NONE, buf);
    op->w = opt(w);
    op->b = opt(b);
    op->p.norm.kind = HL_NORM_LAYER;
    op->p.norm.eps = eps;
    op->p.norm.group = n;
}

static void encoder_block(plan_builder *pb, const hl_model *m, int32_t l) {
    const hl_hparams *hp = &m->hp;
    const hl_layer_weights *L = &m->w.layers[l];
    const int32_t E = hp->n_embd;
    matmul(pb, l, HL_BUF_X, HL_BUF_Q, &L->wq, &L->bq);
    matmul(pb, l, HL_BUF_X, HL_BUF_K, &L->wk, &L->bk);
    matmul(pb, l, HL_BUF_X, HL_BUF_V, &L->wv, &L->bv);
    if (hp->n_rot > 0) {
        rope(pb, l, HL_BUF_Q, hp, hp->n_head, m->rope_inv_freq);
        rope(pb, l, HL_BUF_K, hp, hp->n_head_kv, m->rope_inv_freq);
    }
    hl_op *op = emit(pb, HL_OP_KV_STORE, l, HL_BUF_K, HL_BUF_V, HL_BUF_NONE);
    op->p.kv.n_head_kv = hp->n_head_kv;
    op->p.kv.head_dim_k = hp->head_dim_k;
    op->p.kv.head_dim_v = hp->head_dim_v;
    op = emit(pb, HL_OP_ATTN, l, HL_BUF_Q, HL_BUF_NONE, HL_BUF_ATTN);
    op->p.attn.n_head = hp->n_head;
    op->p.attn.n_head_kv = hp->n_head_kv;
    op->p.attn.head_dim_k = hp->head_dim_k;
    op->p.attn.head_dim_v = hp->head_dim_v;
    op->p.attn.scale = hp->attn_scale;
    op->p.attn.causal = hp->causal;
    matmul(pb, l, HL_BUF_ATTN, HL_BUF_ATTN_OUT, &L->wo, &L->bo);
    emit(pb, HL_OP_ADD, l, HL_BUF_ATTN_OUT, HL_BUF_NONE, HL_BUF_X);
    layer_norm(pb, l, HL_BUF_X, &L->attn_out_norm, &L->attn_out_norm_b, E, hp->norm_eps);
    if (L->ffn_gate.data) {
        matmul(pb, l, HL_BUF_X, HL_BUF_GATE, &L->ffn_gate, NULL);
        matmul(pb, l, HL_BUF_X, HL_BUF_UP, &L->ffn_up, &L->ffn_up_b);
        op = emit(pb, HL_OP_GLU, l, HL_BUF_GATE, HL_BUF_UP, HL_BUF_FFN_ACT);
    } else {
        matmul(pb, l, HL_BUF_X, HL_BUF_UP, &L->ffn_up, &L->ffn_up_b);
        op = emit(pb, HL_OP_ACT, l, HL_BUF_UP, HL_BUF_NONE, HL_BUF_FFN_ACT);
    }
    op->p.act.act = hp->act;
    matmul(pb, l, HL_BUF_FFN_ACT, HL_BUF_FFN_OUT, &L->ffn_down, &L->ffn_down_b);
    emit(pb, HL_OP_ADD, l, HL_BUF_FFN_OUT, HL_BUF_NONE, HL_BUF_X);
    layer_norm(pb, l, HL_BUF_X, &L->layer_out_norm, &L->layer_out_norm_b, E, hp->norm_eps);
}

int hl_plan_build(hl_model *m, hl_err *err) {
    const hl_hparams *hp = &m->hp;
    const hl_weights *W = &m->w;
    hl_plan *p = &m->plan;
    memset(p, 0, sizeof *p);
    p->arch = m->arch->name;
    p->n_embd = hp->n_embd;
    p->n_vocab = hp->n_vocab;
    p->n_layer = hp->n_layer;
    p->n_ctx_train = hp->n_ctx_train;
    p->kv = hl_model_kv_params(m, 0, 0);
    p->weight_bytes = m->weight_bytes;
    const int64_t E = hp->n_embd, F = hp->n_ff;
    const int64_t QD = (int64_t)hp->n_head * hp->head_dim_k, KD = (int64_t)hp->n_head_kv * hp->head_dim_k;
    const int64_t VD = (int64_t)hp->n_head_kv * hp->head_dim_v, OD = (int64_t)hp->n_head * hp->head_dim_v;
    set_buf(p, HL_BUF_X, E, 0);
    set_buf(p, HL_BUF_ATTN_IN, E, 0);
    set_buf(p, HL_BUF_Q, QD, 0);
    set_buf(p, HL_BUF_K, KD, 0);
    set_buf(p, HL_BUF_V, VD, 0);
    set_buf(p, HL_BUF_ATTN, OD, 0);
    set_buf(p, HL_BUF_ATTN_OUT, E, 0);
    set_buf(p, HL_BUF_FFN_IN, E, 0);
    set_buf(p, HL_BUF_GATE, F, 0);
    set_buf(p, HL_BUF_UP, F, 0);
    set_buf(p, HL_BUF_FFN_ACT, F, 0);
    set_buf(p, HL_BUF_FFN_OUT, E, 0);
    set_buf(p, HL_BUF_OUT_IN, E, 1);
    set_buf(p, HL_BUF_OUT_NORM, E, 1);
    set_buf(p, HL_BUF_LOGITS, hl_model_n_out(m), 1);
    p->embedding = hp->embedding;
    plan_builder pb = {.p = p, .cap = hp->n_layer * OPS_PER_BLOCK + OPS_OUTSIDE};
    p->layer_ops = calloc((size_t)hp->n_layer + 1, sizeof *p->layer_ops);
    p->ops = calloc((size_t)pb.cap, sizeof *p->ops);
    if (!p->layer_ops || !p->ops) {
        hl_plan_free(p);
        return hl_err_set(err, HL_ENOMEM, "out of memory building the layer plan");
    }
    hl_op *op = emit(&pb, HL_OP_EMBED, -1, HL_BUF_NONE, HL_BUF_NONE, HL_BUF_X);
    op->w = &W->token_embd;
    op->n_in = 0;
    op->p.embed.scale = hp->embd_scale;
    if (m->arch->encoder) {
        op->p.embed.pos = opt(&W->position_embd);
        op->b = opt(&W->token_type0);
        layer_norm(&pb, -1, HL_BUF_X, &W->token_embd_norm, &W->token_embd_norm_b, (int32_t)E, hp->norm_eps);
        for (int32_t l = 0; l < hp->n_layer; l++) {
            p->layer_ops[l] = p->n_ops;
            encoder_block(&pb, m, l);
        }
        p->layer_ops[hp->n_layer] = p->n_ops;
        /* the output: each wanted token's final hidden state */
        emit(&pb, HL_OP_GATHER, -1, HL_BUF_X, HL_BUF_NONE, HL_BUF_LOGITS);
        return 0;
    }

    for (int32_t l = 0; l < hp->n_layer; l++) {
        const hl_layer_weights *L = &W->layers[l];
        const int swa = m->layer_swa[l];
        const double *inv_freq = swa && m->arch->swa_rope_local ? m->rope_inv_freq_swa : m->rope_inv_freq;
        p->layer_ops[l] = p->n_ops;

        /* olmo2 has no pre-norms: its projections read the residual stream */
        const hl_buf_id ain = L->attn_norm.data ? HL_BUF_ATTN_IN : HL_BUF_X;
        if (L->attn_norm.data) norm(&pb, l, HL_BUF_X, HL_BUF_ATTN_IN, &L->attn_norm, (int32_t)E, hp->norm_eps);
        matmul(&pb, l, ain, HL_BUF_Q, &L->wq, &L->bq);
        matmul(&pb, l, ain, HL_BUF_K, &L->wk, &L->bk);
        matmul(&pb, l, ain, HL_BUF_V, &L->wv, &L->bv);
        /* q/k norms per head (qwen3, gemma3: a head_dim weight) or over the
         * whole projection (olmo2: a weight as wide as it) */
        if (L->q_norm.data) norm(&pb, l, HL_BUF_Q, HL_BUF_Q, &L->q_norm, (int32_t)L->q_norm.ne0, hp->norm_eps);
        if (L->k_norm.data) norm(&pb, l, HL_BUF_K, HL_BUF_K, &L->k_norm, (int32_t)L->k_norm.ne0, hp->norm_eps);
        rope(&pb, l, HL_BUF_Q, hp, hp->n_head, inv_freq);
        rope(&pb, l, HL_BUF_K, hp, hp->n_head_kv, inv_freq);
        op = emit(&pb, HL_OP_KV_STORE, l, HL_BUF_K, HL_BUF_V, HL_BUF_NONE);
        op->p.kv.n_head_kv = hp->n_head_kv;
        op->p.kv.head_dim_k = hp->head_dim_k;
        op->p.kv.head_dim_v = hp->head_dim_v;
        op = emit(&pb, HL_OP_ATTN, l, HL_BUF_Q, HL_BUF_NONE, HL_BUF_ATTN);
        op->p.attn.n_head = hp->n_head;
        op->p.attn.n_head_kv = hp->n_head_kv;
        op->p.attn.head_dim_k = hp->head_dim_k;
        op->p.attn.head_dim_v = hp->head_dim_v;
        op->p.attn.scale = hp->attn_scale;
        op->p.attn.window = swa ? hp->n_swa : 0;
        op->p.attn.softcap = hp->attn_softcap;
        op->p.attn.causal = 1;
        op->p.attn.sinks = opt(&L->attn_sinks);
        matmul(&pb, l, HL_BUF_ATTN, HL_BUF_ATTN_OUT, &L->wo, &L->bo);
        if (L->post_attn_norm.data)
            norm(&pb, l, HL_BUF_ATTN_OUT, HL_BUF_ATTN_OUT, &L->post_attn_norm, (int32_t)E, hp->norm_eps);
        op = emit(&pb, HL_OP_ADD, l, HL_BUF_ATTN_OUT, HL_BUF_NONE, HL_BUF_X);
        op->p.add.scale = hp->residual_scale;

        const hl_buf_id fin = L->ffn_norm.data ? HL_BUF_FFN_IN : HL_BUF_X;
        if (L->ffn_norm.data) norm(&pb, l, HL_BUF_X, HL_BUF_FFN_IN, &L->ffn_norm, (int32_t)E, hp->norm_eps);
        if (m->arch->moe) {
            op = emit(&pb, HL_OP_MOE, l, fin, HL_BUF_NONE, HL_BUF_FFN_OUT);
            op->p.moe.n_expert = hp->n_expert;
            op->p.moe.n_expert_used = hp->n_expert_used;
            op->p.moe.n_ff_exp = hp->n_ff_exp;
            op->p.moe.router = &L->ffn_gate_inp;
            op->p.moe.gate_exps = &L->ffn_gate_exps;
            op->p.moe.up_exps = &L->ffn_up_exps;
            op->p.moe.down_exps = &L->ffn_down_exps;
            if (L->ffn_gate_shexp.data) {
                op->p.moe.n_ff_shexp = hp->n_ff_shexp;
                op->p.moe.gate_shexp = &L->ffn_gate_shexp;
                op->p.moe.up_shexp = &L->ffn_up_shexp;
                op->p.moe.down_shexp = &L->ffn_down_shexp;
                op->p.moe.shexp_gate = opt(&L->ffn_gate_inp_shexp);
            }
            op->p.moe.gating = m->arch->moe_gating;
            op->p.moe.norm_topk = m->arch->moe_norm_topk;
            op->p.moe.router_b = opt(&L->ffn_gate_inp_b);
            op->p.moe.gate_exps_b = opt(&L->ffn_gate_exps_b);
            op->p.moe.up_exps_b = opt(&L->ffn_up_exps_b);
            op->p.moe.down_exps_b = opt(&L->ffn_down_exps_b);
            op->p.moe.act = hp->act;
            op->p.moe.alpha = m->arch->act_alpha;
            op->p.moe.limit = m->arch->act_limit;
        } else {
            matmul(&pb, l, fin, HL_BUF_GATE, &L->ffn_gate, NULL);
            matmul(&pb, l, fin, HL_BUF_UP, &L->ffn_up, NULL);
            op = emit(&pb, HL_OP_GLU, l, HL_BUF_GATE, HL_BUF_UP, HL_BUF_FFN_ACT);
            op->p.act.act = hp->act;
            op->p.act.alpha = m->arch->act_alpha;
            op->p.act.limit = m->arch->act_limit;
            matmul(&pb, l, HL_BUF_FFN_ACT, HL_BUF_FFN_OUT, &L->ffn_down, NULL);
        }
        if (L->post_ffn_norm.data)
            norm(&pb, l, HL_BUF_FFN_OUT, HL_BUF_FFN_OUT, &L->post_ffn_norm, (int32_t)E, hp->norm_eps);
        op = emit(&pb, HL_OP_ADD, l, HL_BUF_FFN_OUT, HL_BUF_NONE, HL_BUF_X);
        op->p.add.scale = hp->residual_scale;
    }
    p->layer_ops[hp->n_layer] = p->n_ops;

    emit(&pb, HL_OP_GATHER, -1, HL_BUF_X, HL_BUF_NONE, HL_BUF_OUT_IN);
    if (hp->embedding) { /* a decoder as embedder: the normed hidden state is the output */
        norm(&pb, -1, HL_BUF_OUT_IN, HL_BUF_LOGITS, &W->output_norm, (int32_t)E, hp->norm_eps);
        return 0;
    }
    norm(&pb, -1, HL_BUF_OUT_IN, HL_BUF_OUT_NORM, &W->output_norm, (int32_t)E, hp->norm_eps);
    matmul(&pb, -1, HL_BUF_OUT_NORM, HL_BUF_LOGITS, &W->output, NULL);
    if (hp->logit_scale > 0 && hp->logit_scale != 1.0f) {
        op = emit(&pb, HL_OP_ACT, -1, HL_BUF_LOGITS, HL_BUF_NONE, HL_BUF_LOGITS);
        op->p.act.act = HL_ACT_SCALE;
        op->p.act.cap = 1.0f / hp->logit_scale;
    }
    if (hp->final_softcap > 0) {
        op = emit(&pb, HL_OP_ACT, -1, HL_BUF_LOGITS, HL_BUF_NONE, HL_BUF_LOGITS);
        op->p.act.act = HL_ACT_SOFTCAP;
        op->p.act.cap = hp->final_softcap;
    }
    return 0;
}
