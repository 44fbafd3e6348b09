// The split fold and the final normalization of attention, shared by
// attn.comp (a work group that folds every split of its rows itself) and
// attn_combine.comp (the pass that folds the partials other work groups
// wrote), so that both do the same arithmetic, operation for operation:
// a token's output has the same bits whichever of the two computed it.
// Every result is `precise` (no contraction into fma, no reordering), so
// the two shaders cannot be compiled into different roundings.
//
// A split's partial is (m, l, acc): the max of its scores, the sum of
// exp(score - m) and the sum of exp(score - m) * v, in position order. The
// running state (M, L, O) starts at (-inf, 0, 0) and takes the splits in
// position order, skipping those the row saw nothing of (m = -inf):
//   M' = max(M, m), a = exp(M - M') (0 while M = -inf), b = exp(m - M'),
//   L = L a + l b, O = O a + acc b.
// The output is O / L, or with an attention sink s (a logit without a
// value, gpt-oss) O c / (L c + exp(s - x)) with x = max(s, M), c = exp(M - x),
// so that neither exponential can overflow.

#define NEG_INF uintBitsToFloat(0xff800000u)

void fold_factors(float M, float m, out float a, out float b) {
    precise float mn = max(M, m);
    precise float ea = exp(M - mn);
    precise float eb = exp(m - mn);
    a = M == NEG_INF ? 0.0 : ea;
    b = eb;
}

float fold_sum(float x, float a, float y, float b) {
    precise float r = x * a + y * b;
    return r;
}

float attn_final(float O, float L, float M, bool has_sink, float sk) {
    if (!has_sink) {
        precise float r = O / L;
        return r;
    }
    precise float x = max(sk, M);
    precise float c = exp(M - x);
    precise float r = O * c / (L * c + exp(sk - x));
    return r;
}
