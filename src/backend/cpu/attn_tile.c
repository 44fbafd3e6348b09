/* Tiled attention over the paged KV cache (FlashAttention-style, on the
 * CPU): one call attends a tile of query rows -- some consecutive tokens of
 * one sequence times some query heads that share one KV head -- over that
 * sequence's cached positions. Keys are visited in blocks of HL_ATTN_BK
 * positions at fixed multiples of HL_ATTN_BK; each block's K and V rows are
 * read from the pool and converted to floats once for the whole tile, scored
 * against every row, and folded into each row's running max, running sum and
 * output accumulator (online softmax), so memory traffic per key is shared by
 * up to HL_ATTN_ROWS rows and blocks past the tile's last position are never
 * touched (causal tiles skipped). Within a block only the rows that see any
 * of its keys are computed, and the next block's rows are prefetched while
 * this one is. Tiles are large (up to 256 rows: 85 tokens x 3 heads on
 * SmolLM2, 42 x 6 on Qwen2.5-Coder) because the conversion is paid per tile
 * and its reads come from beyond L2 in a long prompt; the scratch stays in
 * L2 (about 0.3 MB per thread at head dimension 128).
 *
 * Batch invariance: a row's arithmetic is fixed by its own position and
 * range. Keys a tile loads that the row may not see (other rows' positions,
 * the rest of a block) are masked to -inf: their weight is exactly 0, which
 * adds nothing to the row's sum or output, and a block the row sees none of
 * leaves it unchanged (correction exp(0) = 1, or 0 before its first key when
 * everything is still 0). So a token gives the same bits alone (decode), in
 * any prefill chunk, with any tile shape or thread split; the kernels' own
 * contract (cpu.h) keeps the per-element order fixed. */
#include "backend/cpu/cpu_exec.h"

#include <limits.h>
#include <math.h>
#include <string.h>

static int32_t pad8(int32_t n) { return (n + 7) / 8 * 8; }

size_t cpu_attn_scratch_floats(int32_t hdk, int32_t hdv) {
    const size_t R = HL_ATTN_ROWS, BK = HL_ATTN_BK, hk = (size_t)hdk;
    size_t n = 2 * R /* row pointers */ + R * hk + R * BK + 2 * BK * hk + BK * (size_t)hdv + 5 * R;
    return (n + 15) / 16 * 16;
}

int64_t cpu_attn_tile_end(const hl_batch *b, int64_t t0, int64_t max_tokens) {
    int64_t t1 = t0 + 1;
    const int32_t sq = b->tokens[t0].seq;
    while (t1 < b->n_tokens && t1 - t0 < max_tokens && b->tokens[t1].seq == sq) t1++;
    return t1;
}

/* Converts the K (or V) rows of positions kb + [a0, a1) into dst (row stride ld). */
static void load_rows(const hl_vec_ops *vo, float *dst, int32_t ld, const uint8_t *base, size_t stride, int q8,
                      const hl_batch_seq *seq, int32_t bs, int32_t kb, int32_t a0, int32_t a1, int32_t hd) {
    int32_t p = kb + a0, bi = p / bs, si = p % bs;
    for (int32_t j = a0; j < a1; j++) {
        const uint8_t *row = base + ((size_t)seq->blocks[bi] * bs + (size_t)si) * stride;
        if (q8) vo->q8_0_to_f32(dst + (int64_t)j * ld, row, hd);
        else vo->f16_to_f32(dst + (int64_t)j * ld, (const hl_f16 *)row, hd);
        if (++si == bs) si = 0, bi++;
    }
}

/* Asks for the K and V rows of positions kb + [0, n) ahead of their use
 * (rows of one position are scattered: one per KV block entry, a stride of
 * all the KV heads apart), each row's bytes a cache line at a time. */
static void prefetch_rows(const uint8_t *kh, size_t kstride, const uint8_t *vh, size_t vstride,
                          const hl_batch_seq *seq, int32_t bs, int32_t kb, int32_t n, size_t krow, size_t vrow) {
    int32_t bi = kb / bs, si = kb % bs;
    for (int32_t j = 0; j < n; j++) {
        const size_t slot = (size_t)seq->blocks[bi] * bs + (size_t)si;
        const uint8_t *k = kh + slot * kstride, *v = vh + slot * vstride;
        for (size_t o = 0; o < krow; o += 64) __builtin_prefetch(k + o);
        for (size_t o = 0; o < vrow; o += 64) __builtin_prefetch(v + o);
        if (++si == bs) si = 0, bi++;
    }
}

void cpu_attend_tile(const hl_vec_ops *vo, const cpu_attn_job *a, float *scratch) {
    const hl_batch *b = a->b;
    const int32_t nhq = a->h1 - a->h0, nr = (int32_t)(a->t1 - a->t0) * nhq;
    const int32_t hdk = a->hdk, hdv = a->hdv, BK = HL_ATTN_BK;
    /* this thread's scratch, carved (row pointers first: they need 8-byte alignment) */
    float **out = (float **)(void *)scratch;
    float *q = scratch + 2 * HL_ATTN_ROWS, *s = q + (size_t)HL_ATTN_ROWS * hdk, *kc = s + (size_t)HL_ATTN_ROWS * BK;
    float *kt = kc + (size_t)BK * hdk, *vc = kt + (size_t)BK * hdk, *m = vc + (size_t)BK * hdv, *l = m + HL_ATTN_ROWS, *corr = l + HL_ATTN_ROWS;
    int32_t *lo = (int32_t *)(corr + HL_ATTN_ROWS), *hi = lo + HL_ATTN_ROWS;

    const int32_t sq = b->tokens[a->t0].seq;
    const hl_batch_seq *seq = &b->seqs[sq];
    int32_t end = -1; /* bidirectional: every position up to the sequence's last one in the batch */
    if (!a->causal)
        for (int32_t t = 0; t < b->n_tokens; t++)
            if (b->tokens[t].seq == sq && b->tokens[t].pos > end) end = b->tokens[t].pos;
    int32_t klo = INT32_MAX, khi = -1;
    for (int32_t r = 0; r < nr; r++) {
        const int64_t t = a->t0 + r / nhq;
        const int32_t h = a->h0 + r % nhq, pos = b->tokens[t].pos;
        hi[r] = a->causal ? pos : end;
        lo[r] = a->window > 0 && pos >= a->window ? pos - a->window + 1 : 0;
        klo = lo[r] < klo ? lo[r] : klo;
        khi = hi[r] > khi ? hi[r] : khi;
        out[r] = a->out + t * a->ldo + (int64_t)h * hdv;
        memset(out[r], 0, (size_t)hdv * sizeof(float));
        const float *qr = a->q + t * a->ldq + (int64_t)h * hdk;
        for (int32_t d = 0; d < hdk; d++) q[(int64_t)r * hdk + d] = qr[d] * a->scale;
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }

    const hl_kv_params *kp = hl_kv_get_params(a->kv);
    const int q8 = kp->type == HL_TYPE_Q8_0;
    const int32_t bs = kp->block_size;
    const size_t khb = hl_kv_head_bytes_k(a->kv), vhb = hl_kv_head_bytes_v(a->kv);
    const uint8_t *kh = hl_kv_layer_k(a->kv, a->layer) + (size_t)a->kvh * khb;
    const uint8_t *vh = hl_kv_layer_v(a->kv, a->layer) + (size_t)a->kvh * vhb;
    const size_t kstride = (size_t)kp->n_head_kv * khb, vstride = (size_t)kp->n_head_kv * vhb;

    for (int32_t kb = klo / BK * BK; kb <= khi; kb += BK) {
        /* the positions this tile needs from the block: [kb + a0, kb + a1) */
        const int32_t a0 = (klo > kb ? klo : kb) - kb, a1 = (khi < kb + BK - 1 ? khi : kb + BK - 1) - kb + 1;
        /* the rows that see any of it, [r0, r1): in a causal prefill the
         * tile's early tokens see nothing of the blocks past their own
         * position, and windows can leave a block no row sees. A row outside
         * the range is left exactly as the block would leave it (nothing
         * seen: corr 1 or still nothing, weights 0), as the decode of that
         * row, whose range ends at its own position, never visits it. */
        int32_t r0 = 0, r1 = nr;
        while (r0 < nr && !(lo[r0] < kb + a1 && hi[r0] >= kb + a0)) r0++;
        if (r0 == nr) continue;
        while (!(lo[r1 - 1] < kb + a1 && hi[r1 - 1] >= kb + a0)) r1--;
        const int32_t n = r1 - r0;
        if (kb + BK <= khi) /* the next block's rows on their way from memory while this one computes */
            prefetch_rows(kh, kstride, vh, vstride, seq, bs, kb + BK, khi - kb - BK + 1 < BK ? khi - kb - BK + 1 : BK,
                          khb, vhb);
        /* scores for whole groups of 8 keys: the extra ones are masked below */
        const int32_t j0 = a0 / 8 * 8, j1 = pad8(a1);
        load_rows(vo, kc, hdk, kh, kstride, q8, seq, bs, kb, a0, a1, hdk);
        vo->attn_kt(kt, kc, j0, j1, hdk);
        float *sr = s + (int64_t)r0 * BK;
        vo->attn_qk(sr, q + (int64_t)r0 * hdk, n, kt, j0, j1, hdk);
        for (int32_t r = r0; r < r1; r++) {
            float *x = s + (int64_t)r * BK;
            int32_t v0 = lo[r] - kb, v1 = hi[r] - kb + 1;
            v0 = v0 < 0 ? 0 : v0 > BK ? BK : v0;
            v1 = v1 > BK ? BK : v1 < v0 ? v0 : v1;
            for (int32_t j = 0; j < v0; j++) x[j] = -INFINITY;
            for (int32_t j = v1; j < BK; j++) x[j] = -INFINITY;
            if (a->softcap > 0)
                for (int32_t j = v0; j < v1; j++) x[j] = a->softcap * tanhf(x[j] / a->softcap);
        }
        vo->attn_softmax(sr, n, m + r0, l + r0, corr + r0);
        load_rows(vo, vc, hdv, vh, vstride, q8, seq, bs, kb, a0, a1, hdv);
        vo->attn_pv(out + r0, n, sr, corr + r0, vc, a0, a1, hdv);
    }
    /* attention sinks: one more logit per head in the denominator, with no
     * value; folded in against the larger of it and the row's max so that
     * neither exponential can overflow */
    for (int32_t r = 0; r < nr; r++) {
        float f = 1.0f / l[r];
        if (a->sinks) {
            const float sk = a->sinks[a->h0 + r % nhq], mx = sk > m[r] ? sk : m[r], c = expf(m[r] - mx);
            f = c / (l[r] * c + expf(sk - mx));
        }
        vo->scale(out[r], f, hdv);
    }
}
