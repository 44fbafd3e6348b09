/* The per-sequence sampler: parameters, a private xoshiro256** PRNG, the
 * penalty history (a ring of the last repeat_last_n tokens plus per-token
 * counts and the list of tokens with a nonzero count, so penalties cost
 * O(distinct tokens), not O(vocab)), and the chain described in sample.h.
 * Every buffer is allocated in hl_sampler_new; sampling allocates nothing. */
#include "sample/sample.h"

#include "base/clock.h"
#include "sample/select.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Top-k at most this large (with the logprob alternatives) goes through the
 * one-pass heap; larger k builds every candidate and uses quickselect. */
#define HEAP_TOP_MAX 1024

struct hl_sampler {
    hl_sampling_params p; /* p.logit_bias points at bias below */
    hl_logit_bias *bias;  /* owned copy */
    int32_t n_vocab;

    uint64_t seed;   /* the seed rng was (re)started from */
    uint64_t rng[4]; /* xoshiro256** state */

    /* penalty history */
    int32_t *ring; /* [ring_cap] last tokens when repeat_last_n > 0 */
    int32_t ring_cap, ring_len, ring_head;
    int32_t *counts;     /* [n_vocab] occurrences within the window */
    int32_t *active;     /* [n_vocab] tokens with counts > 0 */
    int32_t *active_pos; /* [n_vocab] index in active, -1 when absent */
    int32_t n_active;

    float *work;   /* [n_vocab] logits after penalties and bias */
    hl_sample_sum_exp_fn sum_exp; /* picked for this CPU at creation */
    hl_cand *cand; /* [n_vocab] candidates for the truncation steps */
};

/* ---- PRNG: splitmix64 seeds xoshiro256** ----------------------------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void rng_seed(hl_sampler *s, uint64_t seed) {
    uint64_t x = seed;
    s->seed = seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(hl_sampler *s) {
    uint64_t *r = s->rng;
    uint64_t out = rotl(r[1] * 5, 7) * 9, t = r[1] << 17;
    r[2] ^= r[0];
    r[3] ^= r[1];
    r[1] ^= r[2];
    r[0] ^= r[3];
    r[2] ^= t;
    r[3] = rotl(r[3], 45);
    return out;
}

/* uniform in [0, 1) with 53 random bits */
static double rng_uniform(hl_sampler *s) {
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

/* ---- parameters -------------------------------------------------------------- */

hl_sampling_params hl_sampling_default_params(void) {
    return (hl_sampling_params){
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.9f,
        .min_p = 0.0f,
        .typical_p = 1.0f,
        .repeat_penalty = 1.1f,
        .repeat_last_n = 64,
        .presence_penalty = 0.0f,
        .frequency_penalty = 0.0f,
        .seed = 0,
        .has_seed = 0,
        .logit_bias = NULL,
        .n_logit_bias = 0,
        .n_top_logprobs = 0,
    };
}

static int check_params(const hl_sampling_params *p, int32_t n_vocab, hl_err *err) {
    if (n_vocab <= 0) return hl_err_set(err, HL_EINVAL, "sampler: vocabulary size %d must be positive", n_vocab);
    const struct { const char *name; float v; } fs[] = {
        {"temperature", p->temperature}, {"top_p", p->top_p}, {"min_p", p->min_p},
        {"typical_p", p->typical_p}, {"repeat_penalty", p->repeat_penalty},
        {"presence_penalty", p->presence_penalty}, {"frequency_penalty", p->frequency_penalty},
    };
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
        if (!isfinite(fs[i].v)) return hl_err_set(err, HL_EINVAL, "sampling option %s must be a finite number", fs[i].name);
    if (p->repeat_penalty <= 0.0f)
        return hl_err_set(err, HL_EINVAL, "repeat_penalty must be > 0 (got %g; 1 disables it)", (double)p->repeat_penalty);
    if (p->top_p < 0.0f) return hl_err_set(err, HL_EINVAL, "top_p must be in [0, 1] (got %g)", (double)p->top_p);
    if (p->typical_p < 0.0f) return hl_err_set(err, HL_EINVAL, "typical_p must be in [0, 1] (got %g)", (double)p->typical_p);
    if (p->min_p > 1.0f) return hl_err_set(err, HL_EINVAL, "min_p must be in [0, 1] (got %g)", (double)p->min_p);
    if (p->repeat_last_n < -1)
        return hl_err_set(err, HL_EINVAL, "repeat_last_n must be >= -1 (got %d; -1 means the whole history, 0 disables)",
                          p->repeat_last_n);
    if (p->repeat_last_n > HL_SAMPLER_MAX_REPEAT_LAST_N)
        return hl_err_set(err, HL_ERANGE, "repeat_last_n %d exceeds the limit of %d", p->repeat_last_n,
                          HL_SAMPLER_MAX_REPEAT_LAST_N);
    if (p->n_top_logprobs < 0 || p->n_top_logprobs > HL_SAMPLER_MAX_TOP_LOGPROBS)
        return hl_err_set(err, HL_ERANGE, "top_logprobs must be between 0 and %d (got %d)", HL_SAMPLER_MAX_TOP_LOGPROBS,
                          p->n_top_logprobs);
    if (p->n_logit_bias < 0 || p->n_logit_bias > HL_SAMPLER_MAX_LOGIT_BIAS)
        return hl_err_set(err, HL_ERANGE, "logit_bias has %d entries; at most %d are allowed", p->n_logit_bias,
                          HL_SAMPLER_MAX_LOGIT_BIAS);
    if (p->n_logit_bias > 0 && !p->logit_bias)
        return hl_err_set(err, HL_EINVAL, "logit_bias count %d given without entries", p->n_logit_bias);
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        const hl_logit_bias *b = &p->logit_bias[i];
        if (b->token < 0 || b->token >= n_vocab)
            return hl_err_set(err, HL_EINVAL, "logit_bias token id %d is outside the vocabulary (0..%d)", b->token,
                              n_vocab - 1);
        if (!isfinite(b->bias))
            return hl_err_set(err, HL_EINVAL, "logit_bias for token %d must be a finite number", b->token);
    }
    return 0;
}

/* ---- lifecycle --------------------------------------------------------------- */

static int alloc_buffers(hl_sampler *s, hl_err *err) {
    size_t n = (size_t)s->n_vocab;
    s->counts = calloc(n, sizeof *s->counts);
    s->active = malloc(n * sizeof *s->active);
    s->active_pos = malloc(n * sizeof *s->active_pos);
    s->work = malloc(n * sizeof *s->work);
    s->cand = malloc(n * sizeof *s->cand);
    if (s->ring_cap > 0) s->ring = malloc((size_t)s->ring_cap * sizeof *s->ring);
    if (s->p.n_logit_bias > 0) s->bias = malloc((size_t)s->p.n_logit_bias * sizeof *s->bias);
    if (!s->counts || !s->active || !s->active_pos || !s->work || !s->cand || (s->ring_cap > 0 && !s->ring) ||
        (s->p.n_logit_bias > 0 && !s->bias))
        return hl_err_set(err, HL_ENOMEM, "sampler: out of memory for a vocabulary of %d tokens", s->n_vocab);
    for (size_t i = 0; i < n; i++) s->active_pos[i] = -1;
    return 0;
}

int hl_sampler_new(hl_sampler **out, const hl_sampling_params *p, int32_t n_vocab, hl_err *err) {
    *out = NULL;
    int rc = check_params(p, n_vocab, err);
    if (rc) return rc;
    hl_sampler *s = calloc(1, sizeof *s);
    if (!s) return hl_err_set(err, HL_ENOMEM, "sampler: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->ring_cap = p->repeat_last_n > 0 ? p->repeat_last_n : 0;
    rc = alloc_buffers(s, err);
    if (rc) {
        hl_sampler_free(s);
        return rc;
    }
    if (p->n_logit_bias > 0) memcpy(s->bias, p->logit_bias, (size_t)p->n_logit_bias * sizeof *s->bias);
    s->p.logit_bias = s->bias;
    uint64_t seed = p->seed;
    if (!p->has_seed) {
        /* no seed given: clock and address, mixed, so concurrent samplers differ */
        uint64_t x = (uint64_t)hl_now_ns() ^ ((uint64_t)(uintptr_t)s << 16);
        seed = splitmix64(&x);
    }
    rng_seed(s, seed);
    s->sum_exp = hl_sample_have_avx2() ? hl_sample_sum_exp_avx2 : hl_sample_sum_exp;
    *out = s;
    return 0;
}

void hl_sampler_free(hl_sampler *s) {
    if (!s) return;
    free(s->bias);
    free(s->ring);
    free(s->counts);
    free(s->active);
    free(s->active_pos);
    free(s->work);
    free(s->cand);
    free(s);
}

uint64_t hl_sampler_seed(const hl_sampler *s) {
    return s->seed;
}

int32_t hl_sampler_n_vocab(const hl_sampler *s) {
    return s->n_vocab;
}

/* ---- history ------------------------------------------------------------------ */

static void count_add(hl_sampler *s, int32_t t) {
    if (s->counts[t]++ == 0) {
        s->active_pos[t] = s->n_active;
        s->active[s->n_active++] = t;
    }
}

static void count_remove(hl_sampler *s, int32_t t) {
    if (--s->counts[t] == 0) {
        int32_t i = s->active_pos[t], last = s->active[--s->n_active];
        s->active[i] = last;
        s->active_pos[last] = i;
        s->active_pos[t] = -1;
    }
}

void hl_sampler_accept(hl_sampler *s, int32_t token) {
    if (token < 0 || token >= s->n_vocab || s->p.repeat_last_n == 0) return;
    if (s->ring_cap == 0) { /* whole history: counts only grow (saturating) */
        if (s->counts[token] < INT32_MAX) count_add(s, token);
        return;
    }
    if (s->ring_len == s->ring_cap) {
        count_remove(s, s->ring[s->ring_head]);
        s->ring_len--;
        s->ring_head = (s->ring_head + 1) % s->ring_cap;
    }
    s->ring[(s->ring_head + s->ring_len) % s->ring_cap] = token;
    s->ring_len++;
    count_add(s, token);
}

void hl_sampler_reset(hl_sampler *s) {
    for (int32_t i = 0; i < s->n_active; i++) {
        s->counts[s->active[i]] = 0;
        s->active_pos[s->active[i]] = -1;
    }
    s->n_active = 0;
    s->ring_len = s->ring_head = 0;
    rng_seed(s, s->seed);
}

int hl_sampler_clone(const hl_sampler *s, uint64_t fork_index, hl_sampler **out, hl_err *err) {
    hl_sampling_params p = s->p;
    p.has_seed = 1;
    /* derived seed: a hash of (seed, index), so forks are distinct but stable */
    uint64_t x = s->seed ^ (0xD1B54A32D192ED03ULL * (fork_index + 1));
    p.seed = splitmix64(&x);
    int rc = hl_sampler_new(out, &p, s->n_vocab, err);
    if (rc) return rc;
    hl_sampler *c = *out;
    memcpy(c->counts, s->counts, (size_t)s->n_vocab * sizeof *c->counts);
    memcpy(c->active, s->active, (size_t)s->n_active * sizeof *c->active);
    memcpy(c->active_pos, s->active_pos, (size_t)s->n_vocab * sizeof *c->active_pos);
    c->n_active = s->n_active;
    if (s->ring_cap > 0) memcpy(c->ring, s->ring, (size_t)s->ring_cap * sizeof *c->ring);
    c->ring_len = s->ring_len;
    c->ring_head = s->ring_head;
    return 0;
}

/* ---- the chain ------------------------------------------------------------------- */

/* Steps 1-2: work = logits, masked by the processor (if any), with penalties
 * and bias applied. A masked -inf stays -inf through both. NaN is left in
 * place: every later pass tests `v > -INFINITY`, which is false for NaN, so a
 * NaN logit is treated as banned without an extra pass here. */
static void apply_penalties_and_bias(hl_sampler *s, const float *logits, hl_logits_proc *proc) {
    float *w = s->work;
    memcpy(w, logits, (size_t)s->n_vocab * sizeof *w);
    if (proc) proc->vt->mask(proc, w, s->n_vocab);
    const float rp = s->p.repeat_penalty, fq = s->p.frequency_penalty, pr = s->p.presence_penalty;
    if (rp != 1.0f || fq != 0.0f || pr != 0.0f) {
        for (int32_t i = 0; i < s->n_active; i++) {
            int32_t t = s->active[i];
            float v = w[t];
            if (rp != 1.0f) v = v > 0.0f ? v / rp : v * rp;
            v -= (float)s->counts[t] * fq + pr;
            w[t] = v;
        }
    }
    for (int32_t i = 0; i < s->p.n_logit_bias; i++) {
        const hl_logit_bias *b = &s->bias[i];
        w[b->token] = b->bias <= -100.0f ? -INFINITY : w[b->token] + b->bias;
    }
}

/* c[i].p = e^((logit - mx) * inv_t) * scale, four at a time. */
static void exp_into(hl_cand *c, int32_t n, float mx, float inv_t, float scale) {
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        hl_v4f v = {c[i].logit, c[i + 1].logit, c[i + 2].logit, c[i + 3].logit};
        hl_v4f e = hl_sample_expf4((v - mx) * inv_t) * scale;
        for (int j = 0; j < 4; j++) c[i + j].p = e[j];
    }
    for (; i < n; i++) c[i].p = hl_sample_expf((c[i].logit - mx) * inv_t) * scale;
}

/* Softmax of c[0..n) at temperature 1 into c[i].p. */
static void cand_softmax(hl_cand *c, int32_t n) {
    float mx = -INFINITY;
    for (int32_t i = 0; i < n; i++) mx = c[i].logit > mx ? c[i].logit : mx;
    exp_into(c, n, mx, 1.0f, 1.0f);
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) sum += c[i].p;
    const float inv = (float)(1.0 / sum);
    for (int32_t i = 0; i < n; i++) c[i].p *= inv;
}

static void keys_are_logits(hl_cand *c, int32_t n) {
    for (int32_t i = 0; i < n; i++) c[i].key = c[i].logit;
}

/* Locally typical sampling: keep the tokens whose surprise is closest to the
 * entropy, up to typical_p of the mass. */
static int32_t step_typical(hl_cand *c, int32_t n, float tp) {
    cand_softmax(c, n);
    double ent = 0.0;
    for (int32_t i = 0; i < n; i++)
        if (c[i].p > 0.0f) ent -= (double)c[i].p * log((double)c[i].p);
    for (int32_t i = 0; i < n; i++) {
        double surprise = c[i].p > 0.0f ? -log((double)c[i].p) : INFINITY;
        c[i].key = (float)-fabs(surprise - ent); /* closest to the entropy first */
    }
    /* llama.cpp stops once the mass strictly exceeds typical_p */
    n = hl_sample_select_mass(c, n, tp, 1);
    keys_are_logits(c, n);
    return n;
}

static int32_t step_min_p(hl_cand *c, int32_t n, float min_p) {
    float mx = -INFINITY;
    for (int32_t i = 0; i < n; i++) mx = c[i].logit > mx ? c[i].logit : mx;
    /* p_i >= min_p * p_max  <=>  logit_i >= max + log(min_p) */
    const float thr = mx + logf(min_p);
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++)
        if (c[i].logit >= thr) c[k++] = c[i];
    return k > 0 ? k : n; /* cannot happen (the max passes); kept defensive */
}

/* Step 8: temperature, softmax over the kept set, one draw. Returns the
 * index into c of the chosen candidate. */
static int32_t draw(hl_sampler *s, hl_cand *c, int32_t n) {
    if (n == 1) return 0;
    float mx = -INFINITY;
    for (int32_t i = 0; i < n; i++) mx = c[i].logit > mx ? c[i].logit : mx;
    /* p is free scratch once the truncation steps are done */
    exp_into(c, n, mx, 1.0f / s->p.temperature, 1.0f);
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) sum += c[i].p;
    const double u = rng_uniform(s) * sum;
    double cum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        cum += c[i].p;
        if (u < cum) return i;
    }
    return n - 1; /* rounding left u at the very top */
}

/* Step 8 over the whole row when no step truncated anything: the same draw
 * as draw() without building candidates. Pass 1 sums the weights; pass 2
 * walks 4-element chunks by their sums and looks inside only the chunk where
 * the running sum passes u. Banned entries (weight ~1e-38) are never chosen. */
static int32_t draw_row(hl_sampler *s, float mx) {
    const float *w = s->work;
    const int32_t nv = s->n_vocab, n4 = nv & ~3;
    const float inv_t = 1.0f / s->p.temperature;
    const double total = s->sum_exp(w, nv, mx, inv_t);
    const double u = rng_uniform(s) * total;
    double cum = 0.0;
    int32_t last = -1;
    for (int32_t i = 0; i < n4; i += 4) {
        hl_v4f v;
        memcpy(&v, w + i, sizeof v);
        hl_v4f e = hl_sample_expf4((v - mx) * inv_t);
        double next = cum + (double)((e[0] + e[1]) + (e[2] + e[3]));
        if (u < next) {
            for (int j = 0; j < 4; j++) {
                if (!(w[i + j] > -INFINITY)) continue;
                cum += e[j];
                last = i + j;
                if (u < cum) return i + j;
            }
        } else {
            for (int j = 0; j < 4; j++) last = w[i + j] > -INFINITY ? i + j : last;
        }
        cum = next;
    }
    for (int32_t i = n4; i < nv; i++) {
        if (!(w[i] > -INFINITY)) continue;
        cum += hl_sample_expf((w[i] - mx) * inv_t);
        last = i;
        if (u < cum) return i;
    }
    return last; /* rounding left u past the end: the last allowed token */
}

/* Every token banned: fall back to the raw argmax (lowest id on ties) rather
 * than fail, since the runner must produce something. */
static int32_t raw_argmax(const float *logits, int32_t n) {
    int32_t best = 0;
    float bv = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (logits[i] > bv) bv = logits[i], best = i;
    return best;
}

/* sum of e^(w[i] - mx) over the row (banned and NaN entries add ~1e-38).
 * Float lanes keep the inner loop vectorizable; each 256-element block is
 * folded into a double so the rounding error stays ~256 ulp at any size. */
double hl_sample_sum_exp(const float *w, int32_t n, float mx, float inv_t) {
    double total = 0.0;
    int32_t i = 0;
    while (i < n) {
        int32_t end = n - i > 256 ? i + 256 : n;
        hl_v4f a0 = {0}, a1 = {0};
        for (; i + 8 <= end; i += 8) {
            hl_v4f v0, v1;
            memcpy(&v0, w + i, sizeof v0);
            memcpy(&v1, w + i + 4, sizeof v1);
            a0 += hl_sample_expf4((v0 - mx) * inv_t);
            a1 += hl_sample_expf4((v1 - mx) * inv_t);
        }
        for (; i < end; i++) a0[0] += hl_sample_expf((w[i] - mx) * inv_t);
        a0 += a1;
        for (int j = 0; j < 4; j++) total += a0[j];
    }
    return total;
}

/* AVX2 and FMA present, and not capped by HL_SIMD=scalar (the same switch the
 * CPU backend honours, so one variable forces the portable paths). */
int hl_sample_have_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    const char *cap = getenv("HL_SIMD");
    if (cap && strcmp(cap, "scalar") == 0) return 0;
    /* libgcc fills the CPU model in a constructor; no __builtin_cpu_init here,
     * which would rewrite it while other threads read it */
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* Fills the top alternatives from top[0..n_top) (sorted, top[0] the maximum
 * of work) given z = sum_exp(work, top[0].logit); returns the log-sum-exp. */
static double fill_logprobs(hl_sampler *s, hl_token_logprobs *lp, const hl_cand *top, int32_t n_top, double z) {
    const double lse = (double)top[0].logit + log(z);
    lp->n_top = n_top < s->p.n_top_logprobs ? n_top : s->p.n_top_logprobs;
    for (int32_t i = 0; i < lp->n_top; i++) {
        lp->top[i].token = top[i].id;
        lp->top[i].logprob = (float)((double)top[i].logit - lse);
    }
    return lse;
}

static int32_t all_banned(const float *logits, int32_t nv, hl_token_logprobs *lp) {
    int32_t tok = raw_argmax(logits, nv);
    if (lp) {
        lp->chosen.token = tok;
        lp->chosen.logprob = -INFINITY;
        lp->n_top = 0;
    }
    return tok;
}

/* Builds candidates from work entries >= cut (finite only); with z > 0 also
 * sets p = e^(logit - mx) / z, the probability within the whole row. */
static int32_t gather(hl_sampler *s, float cut, float mx, double z) {
    const float *w = s->work;
    hl_cand *c = s->cand;
    const float inv_z = z > 0.0 ? (float)(1.0 / z) : 0.0f;
    int32_t n = 0;
    /* Blocks of 16 with nothing kept (most of them, under a top-p or min-p
     * cut) are skipped after one vectorizable test; inside a block the store
     * is branch-free: always write, advance only when kept (cand has n_vocab
     * slots, so the write is always in bounds). */
    const int32_t nv = s->n_vocab;
    for (int32_t i0 = 0; i0 < nv; i0 += 16) {
        const int32_t end = nv - i0 > 16 ? i0 + 16 : nv;
        int any = 0;
        for (int32_t i = i0; i < end; i++) any |= (w[i] >= cut) & (w[i] > -INFINITY);
        if (!any) continue;
        for (int32_t i = i0; i < end; i++) {
            float v = w[i];
            c[n] = (hl_cand){.logit = v, .key = v, .p = 0.0f, .id = i};
            n += (v >= cut) & (v > -INFINITY);
        }
    }
    if (z > 0.0) exp_into(c, n, mx, 1.0f, inv_z);
    return n;
}

int32_t hl_sampler_sample(hl_sampler *s, const float *logits, hl_token_logprobs *lp) {
    return hl_sampler_sample_masked(s, logits, NULL, lp);
}

int32_t hl_sampler_sample_masked(hl_sampler *s, const float *logits, hl_logits_proc *proc, hl_token_logprobs *lp) {
    const int32_t nv = s->n_vocab, ntop = lp ? s->p.n_top_logprobs : 0;
    const hl_sampling_params *p = &s->p;
    hl_cand *c = s->cand;
    apply_penalties_and_bias(s, logits, proc);

    /* at least one candidate: the maximum anchors every softmax */
    const int32_t want = ntop > 0 ? ntop : 1;
    const int32_t k = p->top_k;
    double lse = 0.0;
    int32_t n;
    int topp_done = 0;
    if (p->temperature <= 0.0f) {
        /* greedy: the heap's first entry is the argmax with ties to the lowest id */
        n = hl_sample_heap_top(s->work, nv, want, c);
        if (n == 0) return all_banned(logits, nv, lp);
        if (lp) {
            lse = fill_logprobs(s, lp, c, n, s->sum_exp(s->work, nv, c[0].logit, 1.0f));
            lp->chosen = (hl_token_logprob){c[0].id, (float)((double)c[0].logit - lse)};
        }
        return c[0].id;
    }
    if (k > 0 && k < nv && (k > want ? k : want) <= HEAP_TOP_MAX) {
        n = hl_sample_heap_top(s->work, nv, k > want ? k : want, c); /* sorted */
        if (n == 0) return all_banned(logits, nv, lp);
        if (lp) lse = fill_logprobs(s, lp, c, n, s->sum_exp(s->work, nv, c[0].logit, 1.0f));
        if (n > k) n = k;
    } else {
        hl_cand top[HL_SAMPLER_MAX_TOP_LOGPROBS];
        int32_t m = hl_sample_heap_top(s->work, nv, want, top);
        if (m == 0) return all_banned(logits, nv, lp);
        const float mx = top[0].logit;
        const int cut_topp = p->top_p < 1.0f - 1e-4f && !(k > 0 && k < nv) && p->typical_p >= 1.0f;
        double z = lp || cut_topp ? s->sum_exp(s->work, nv, mx, 1.0f) : 0.0;
        if (lp) lse = fill_logprobs(s, lp, top, m, z);
        float cut = -INFINITY;
        if (cut_topp) {
            /* Tokens below mx - d carry less than n e^-d = (1 - top_p) z / 4 of
             * the mass, so the nucleus (mass >= top_p z) lies wholly above the
             * cut: skip them without sorting or even gathering them. */
            cut = mx - (float)log(4.0 * nv / ((1.0 - p->top_p) * z));
        }
        if (p->min_p > 0.0f && (k <= 0 || k >= nv) && p->typical_p >= 1.0f) {
            /* min-p keeps logit >= mx + log(min_p) after top-p; both keep a
             * sorted prefix and mx is in both, so dropping the rest first is exact */
            float mcut = mx + logf(p->min_p);
            cut = mcut > cut ? mcut : cut;
        }
        if (!(k > 0 && k < nv) && p->top_p >= 1.0f && p->min_p <= 0.0f && p->typical_p >= 1.0f) {
            /* nothing truncates: draw straight from the row */
            int32_t tok = draw_row(s, mx);
            if (lp) lp->chosen = (hl_token_logprob){tok, (float)((double)s->work[tok] - lse)};
            return tok;
        }
        n = gather(s, cut, mx, cut_topp ? z : 0.0);
        if (cut_topp) {
            n = hl_sample_select_mass(c, n, p->top_p, 0);
            topp_done = 1;
        }
        if (k > 0 && k < n) {
            hl_sample_select_top(c, n, k);
            n = k;
        }
    }
    if (p->typical_p < 1.0f && n > 1) n = step_typical(c, n, p->typical_p);
    if (p->top_p < 1.0f && n > 1 && !topp_done) {
        cand_softmax(c, n);
        n = hl_sample_select_mass(c, n, p->top_p, 0);
    }
    if (p->min_p > 0.0f && n > 1) n = step_min_p(c, n, p->min_p);

    int32_t i = draw(s, c, n);
    if (lp) lp->chosen = (hl_token_logprob){c[i].id, (float)((double)c[i].logit - lse)};
    return c[i].id;
}
