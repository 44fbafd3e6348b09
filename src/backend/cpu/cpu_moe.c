/* The CPU backend's routed-experts op (HL_OP_MOE, backend.h): router matmul,
 * per-token gating, then the experts batched: the tokens routed to one expert
 * are gathered into consecutive rows and multiplied together by that
 * expert's slice of the 3-D weights (one pass over its weights per step, and
 * only the experts some token of the step uses are read), on every thread
 * (threads split each expert's weight rows, as hl_matmul_slice does). Each
 * token's output is then summed over its experts in rank order, so a row's
 * result does not depend on which other tokens share the batch (a matmul
 * row's value does not depend on the other rows; the order of the sum is
 * fixed per token). Owns its scratch (cpu_moe_scratch), sized at prepare from
 * the plan's MOE ops or per run_op call. */
#include "backend/cpu/cpu_exec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct cpu_moe_scratch {
    int64_t T, K, NE, E, F; /* capacities: tokens, used experts, experts, widths */
    float *logits;          /* [T][NE] router logits */
    int32_t *sel;           /* [T][K] expert of each (token, rank) */
    float *wt;              /* [T][K] its weight */
    int32_t *slot_tok;      /* [T*K] token of each gathered row, grouped by expert */
    int32_t *tok_slot;      /* [T][K] gathered row of each (token, rank) */
    int32_t *start;         /* [NE + 1] first gathered row of each expert */
    float *g, *u;           /* [T*K][F] gate and up outputs (then act(g) * u in g) */
    float *y;               /* [T*K][E] each gathered row's expert output */
    float *sg, *su, *sy;    /* shared expert: [T][F], [T][F], [T][E] */
    void *xq_r, *xq_x, *xq_s; /* converted activations: router input, expert or shared-expert input [T], gathered rows [T*K] */
};

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

const char *cpu_moe_unsupported(const hl_op *op) {
    const char *why = hl_moe_op_malformed(op);
    if (why) return why;
    const hl_tensor *r = op->p.moe.router, *g = op->p.moe.gate_exps, *u = op->p.moe.up_exps, *d = op->p.moe.down_exps;
    if (!hl_matmul_supported(r->type) || !hl_matmul_supported(g->type) || !hl_matmul_supported(u->type) ||
        !hl_matmul_supported(d->type))
        return "an MoE weight type";
    if (hl_matmul_act_type(g->type) != hl_matmul_act_type(u->type)) return "MoE gate and up weights of unlike types";
    if (op->p.moe.n_ff_shexp > 0) {
        const hl_tensor *sg = op->p.moe.gate_shexp, *su = op->p.moe.up_shexp, *sd = op->p.moe.down_shexp;
        if (!hl_matmul_supported(sg->type) || !hl_matmul_supported(su->type) || !hl_matmul_supported(sd->type))
            return "a shared-expert weight type";
        if (hl_matmul_act_type(sg->type) != hl_matmul_act_type(su->type)) return "shared-expert gate and up weights of unlike types";
    }
    return NULL;
}

void cpu_moe_scratch_free(cpu_moe_scratch *s) {
    if (!s) return;
    free(s->logits), free(s->sel), free(s->wt), free(s->slot_tok), free(s->tok_slot), free(s->start);
    free(s->g), free(s->u), free(s->y), free(s->sg), free(s->su), free(s->sy);
    free(s->xq_r), free(s->xq_x), free(s->xq_s);
    free(s);
}

static size_t act_bytes(const hl_tensor *w, int64_t m, int64_t k) {
    return w ? hl_matmul_act_size(w->type, m > 0 ? m : 1, k) : 0;
}

int cpu_moe_scratch_new(const hl_op *const *ops, int32_t n_ops, int64_t T, cpu_moe_scratch **out, size_t *bytes) {
    *out = NULL;
    if (n_ops == 0) return 0;
    cpu_moe_scratch *s = calloc(1, sizeof *s);
    if (!s) return HL_ENOMEM;
    size_t xr = 0, xx = 0, xs = 0;
    T = T > 0 ? T : 1;
    for (int32_t i = 0; i < n_ops; i++) {
        const hl_op *op = ops[i];
        s->K = max64(s->K, op->p.moe.n_expert_used);
        s->NE = max64(s->NE, op->p.moe.n_expert);
        s->E = max64(s->E, op->n_in);
        s->F = max64(s->F, max64(op->p.moe.n_ff_exp, op->p.moe.n_ff_shexp));
        const int64_t TK = T * op->p.moe.n_expert_used;
        xr = xr > act_bytes(op->p.moe.router, T, op->n_in) ? xr : act_bytes(op->p.moe.router, T, op->n_in);
        size_t a = act_bytes(op->p.moe.gate_exps, T, op->n_in), b = act_bytes(op->p.moe.gate_shexp, T, op->n_in);
        xx = (size_t)max64((int64_t)xx, max64((int64_t)a, (int64_t)b));
        b = act_bytes(op->p.moe.down_shexp, T, op->p.moe.n_ff_shexp); /* the shared expert's down input */
        xx = (size_t)max64((int64_t)xx, (int64_t)b);
        a = act_bytes(op->p.moe.gate_exps, TK, op->n_in);
        b = act_bytes(op->p.moe.down_exps, TK, op->p.moe.n_ff_exp);
        xs = (size_t)max64((int64_t)xs, max64((int64_t)a, (int64_t)b));
    }
    s->T = T;
    const size_t TK = (size_t)(T * s->K);
    s->logits = malloc((size_t)T * (size_t)s->NE * sizeof(float));
    s->sel = malloc(TK * sizeof(int32_t));
    s->wt = malloc(TK * sizeof(float));
    s->slot_tok = malloc(TK * sizeof(int32_t));
    s->tok_slot = malloc(TK * sizeof(int32_t));
    s->start = malloc((size_t)(s->NE + 1) * sizeof(int32_t));
    s->g = malloc(TK * (size_t)s->F * sizeof(float));
    s->u = malloc(TK * (size_t)s->F * sizeof(float));
    s->y = malloc(TK * (size_t)s->E * sizeof(float));
    s->sg = malloc((size_t)T * (size_t)s->F * sizeof(float));
    s->su = malloc((size_t)T * (size_t)s->F * sizeof(float));
    s->sy = malloc((size_t)T * (size_t)s->E * sizeof(float));
    s->xq_r = malloc(xr ? xr : 64), s->xq_x = malloc(xx ? xx : 64), s->xq_s = malloc(xs ? xs : 64);
    if (!s->logits || !s->sel || !s->wt || !s->slot_tok || !s->tok_slot || !s->start || !s->g || !s->u || !s->y ||
        !s->sg || !s->su || !s->sy || !s->xq_r || !s->xq_x || !s->xq_s) {
        cpu_moe_scratch_free(s);
        return HL_ENOMEM;
    }
    if (bytes)
        *bytes += (size_t)T * (size_t)s->NE * 4 + TK * 16 + TK * (size_t)(2 * s->F + s->E) * 4 +
                  (size_t)T * (size_t)(2 * s->F + s->E) * 4 + xr + xx + xs;
    *out = s;
    return 0;
}

/* Top k of v[0..n) (ties: the lower index), largest first. */
static void top_k(const float *v, int32_t n, int32_t k, int32_t *sel) {
    for (int32_t j = 0; j < k; j++) {
        int32_t best = -1;
        for (int32_t e = 0; e < n; e++) {
            int taken = 0;
            for (int32_t i = 0; i < j; i++) taken |= sel[i] == e;
            if (!taken && (best < 0 || v[e] > v[best])) best = e;
        }
        sel[j] = best;
    }
}

/* The family's gating of one token's logits into k experts and weights
 * (softmax in double, rounded once). Shared with nothing: the reference has
 * its own copy of the definition. */
static void gate_token(const hl_op *op, const float *lg, int32_t *sel, float *wt) {
    const int32_t n = op->p.moe.n_expert, k = op->p.moe.n_expert_used;
    top_k(lg, n, k, sel);
    double mx = lg[sel[0]], sum = 0;
    if (op->p.moe.gating == HL_MOE_TOPK_SOFTMAX) {
        for (int32_t j = 0; j < k; j++) sum += exp((double)lg[sel[j]] - mx);
        for (int32_t j = 0; j < k; j++) wt[j] = (float)(exp((double)lg[sel[j]] - mx) / sum);
        return;
    }
    for (int32_t e = 0; e < n; e++) sum += exp((double)lg[e] - mx);
    double ks = 0;
    for (int32_t j = 0; j < k; j++) ks += exp((double)lg[sel[j]] - mx) / sum;
    for (int32_t j = 0; j < k; j++) {
        double p = exp((double)lg[sel[j]] - mx) / sum;
        wt[j] = (float)(op->p.moe.norm_topk ? p / ks : p);
    }
}

static const void *expert(const hl_tensor *w, int32_t e) { return (const char *)w->data + (size_t)e * (size_t)w->ne1 * w->row_bytes; }

static void glu_rows(const hl_backend_prog *c, const hl_op *op, float *g, const float *u, int64_t r0, int64_t r1, int64_t F, int64_t ld) {
    for (int64_t r = r0; r < r1; r++)
        cpu_glu(c->vo, op->p.moe.act, op->p.moe.alpha, op->p.moe.limit, g + r * ld, g + r * ld, u + r * ld, F);
}

void cpu_op_moe(hl_backend_prog *c, const hl_op *op, const float *x, float *out, int ith, int nth) {
    cpu_moe_scratch *s = c->moe;
    const int64_t T = c->batch->n_tokens, E = op->n_in, F = op->p.moe.n_ff_exp;
    const int32_t NE = op->p.moe.n_expert, K = op->p.moe.n_expert_used;
    const hl_tensor *R = op->p.moe.router, *G = op->p.moe.gate_exps, *U = op->p.moe.up_exps, *D = op->p.moe.down_exps;
    if (T == 0) return;
    int64_t r0, r1;
    cpu_split(T, ith, nth, &r0, &r1);
    /* 1. router logits; the expert input converted once for all experts */
    hl_matmul_prepare(R->type, x + r0 * E, E, r1 - r0, E, (char *)s->xq_r + r0 * hl_matmul_act_size(R->type, 1, E), 0, 1);
    const size_t rs_x = hl_matmul_act_size(G->type, 1, E);
    hl_matmul_prepare(G->type, x + r0 * E, E, r1 - r0, E, (char *)s->xq_x + r0 * rs_x, 0, 1);
    cpu_sync(c);
    hl_matmul_slice(R->type, R->data, NE, E, s->xq_r, T, s->logits, NE, ith, nth);
    cpu_sync(c);
    /* 2. gating, per token */
    for (int64_t t = r0; t < r1; t++) {
        float *lg = s->logits + t * NE;
        if (op->p.moe.router_b)
            for (int32_t e = 0; e < NE; e++) lg[e] += ((const float *)op->p.moe.router_b->data)[e];
        gate_token(op, lg, s->sel + t * K, s->wt + t * K);
    }
    cpu_sync(c);
    /* 3. group the (token, rank) pairs by expert, tokens in batch order */
    if (ith == 0) {
        memset(s->start, 0, (size_t)(NE + 1) * sizeof(int32_t));
        for (int64_t i = 0; i < T * K; i++) s->start[s->sel[i] + 1]++;
        for (int32_t e = 0; e < NE; e++) s->start[e + 1] += s->start[e];
        int32_t fill[NE];
        memcpy(fill, s->start, (size_t)NE * sizeof(int32_t));
        for (int64_t t = 0; t < T; t++)
            for (int32_t j = 0; j < K; j++) {
                int32_t row = fill[s->sel[t * K + j]]++;
                s->slot_tok[row] = (int32_t)t;
                s->tok_slot[t * K + j] = row;
            }
    }
    cpu_sync(c);
    /* 4. gathered rows: copies of their token's converted input */
    int64_t s0, s1;
    cpu_split(T * K, ith, nth, &s0, &s1);
    for (int64_t i = s0; i < s1; i++) memcpy((char *)s->xq_s + i * rs_x, (char *)s->xq_x + s->slot_tok[i] * rs_x, rs_x);
    cpu_sync(c);
    /* 5. gate and up of every used expert over its rows (all threads split its weight rows) */
    for (int32_t e = 0; e < NE; e++) {
        const int64_t a = s->start[e], m = s->start[e + 1] - a;
        if (m == 0) continue;
        const void *xq = (const char *)s->xq_s + a * rs_x;
        hl_matmul_slice(G->type, expert(G, e), F, E, xq, m, s->g + a * F, F, ith, nth);
        hl_matmul_slice(U->type, expert(U, e), F, E, xq, m, s->u + a * F, F, ith, nth);
    }
    /* the shared expert's gate and up over the batch */
    const hl_tensor *SG = op->p.moe.gate_shexp, *SU = op->p.moe.up_shexp, *SD = op->p.moe.down_shexp;
    const int64_t S = op->p.moe.n_ff_shexp;
    if (S > 0) {
        cpu_sync(c); /* xq_x is reused for the shared expert's input type */
        const size_t rs_h = hl_matmul_act_size(SG->type, 1, E);
        hl_matmul_prepare(SG->type, x + r0 * E, E, r1 - r0, E, (char *)s->xq_x + r0 * rs_h, 0, 1);
        cpu_sync(c);
        hl_matmul_slice(SG->type, SG->data, S, E, s->xq_x, T, s->sg, S, ith, nth);
        hl_matmul_slice(SU->type, SU->data, S, E, s->xq_x, T, s->su, S, ith, nth);
    }
    cpu_sync(c);
    /* 6. biases, activation, the down projections' input */
    const size_t rs_d = hl_matmul_act_size(D->type, 1, F);
    for (int64_t i = s0; i < s1; i++) {
        const int32_t t = s->slot_tok[i];
        (void)t;
        float *gi = s->g + i * F, *ui = s->u + i * F;
        int32_t e = 0;
        while (s->start[e + 1] <= i) e++;
        if (op->p.moe.gate_exps_b) c->vo->add(gi, (const float *)op->p.moe.gate_exps_b->data + (int64_t)e * F, F);
        if (op->p.moe.up_exps_b) c->vo->add(ui, (const float *)op->p.moe.up_exps_b->data + (int64_t)e * F, F);
        glu_rows(c, op, gi, ui, 0, 1, F, F);
        hl_matmul_prepare(D->type, gi, F, 1, F, (char *)s->xq_s + i * rs_d, 0, 1);
    }
    if (S > 0) glu_rows(c, op, s->sg, s->su, r0, r1, S, S);
    cpu_sync(c);
    for (int32_t e = 0; e < NE; e++) {
        const int64_t a = s->start[e], m = s->start[e + 1] - a;
        if (m == 0) continue;
        hl_matmul_slice(D->type, expert(D, e), E, F, (const char *)s->xq_s + a * rs_d, m, s->y + a * E, E, ith, nth);
    }
    if (S > 0) {
        cpu_sync(c); /* xq_x: the shared expert's down input */
        const size_t rs_h = hl_matmul_act_size(SD->type, 1, S);
        hl_matmul_prepare(SD->type, s->sg + r0 * S, S, r1 - r0, S, (char *)s->xq_x + r0 * rs_h, 0, 1);
        cpu_sync(c);
        hl_matmul_slice(SD->type, SD->data, E, S, s->xq_x, T, s->sy, E, ith, nth);
    }
    cpu_sync(c);
    /* 7. per token: its experts in rank order, then the shared expert */
    for (int64_t t = r0; t < r1; t++) {
        float *o = out + t * op->n_out;
        memset(o, 0, (size_t)E * sizeof(float));
        for (int32_t j = 0; j < K; j++) {
            const int32_t row = s->tok_slot[t * K + j], e = s->sel[t * K + j];
            const float w = s->wt[t * K + j], *yr = s->y + (int64_t)row * E;
            const float *db = op->p.moe.down_exps_b ? (const float *)op->p.moe.down_exps_b->data + (int64_t)e * E : NULL;
            for (int64_t i = 0; i < E; i++) o[i] += w * (db ? yr[i] + db[i] : yr[i]);
        }
        if (S > 0) {
            float gs = 1.0f;
            if (op->p.moe.shexp_gate) {
                const float d = c->vo->dot_f32(op->p.moe.shexp_gate->data, x + t * E, E);
                gs = 1.0f / (1.0f + expf(-d));
            }
            const float *yr = s->sy + t * E;
            for (int64_t i = 0; i < E; i++) o[i] += gs * yr[i];
        }
    }
}
