/* Adaptive speculation (spec.h): the step-cost model, acceptance estimates
 * and the draft-length choice. Pure arithmetic on small structs owned by the
 * engine (the cost model) and by each sequence (its acceptance); nothing
 * here allocates or locks. */
#include "runner/spec.h"

#include <math.h>

enum { FIT_MIN_STEPS = 24, DRAFT_PRIOR_TOKENS = 8 };
static const double COST_DECAY = 0.99; /* forgetting per observed step (~100 steps) */
/* per drafted position verified (~30 of them), not per verification: a
 * draft model that drafts one token a step would otherwise hold only ~7
 * observations against the prior, and estimate perfect drafts as 0.9 */
static const double SEQ_DECAY = 0.97;
/* per observed step, for the drafter's timings (~1000 steps): a retry of a draft
 * measured too dear pays a catch-up of every token since it last drafted, so
 * the retry interval sets the loss (the catch-up is ~ interval x the draft's
 * prefill cost per token); a slow fade keeps a dear draft off for many requests */
static const double DRAFT_DECAY = 0.999;

void spec_cost_init(spec_cost *c, double prior) {
    *c = (spec_cost){.prior = prior > 0 ? prior : SPEC_DEFAULT_ROW_COST};
}

void spec_cost_observe(spec_cost *c, int32_t rows, double ns) {
    if (rows <= 0 || !(ns > 0)) return;
    double m = rows;
    c->w = c->w * COST_DECAY + 1;
    c->sm = c->sm * COST_DECAY + m;
    c->smm = c->smm * COST_DECAY + m * m;
    c->st = c->st * COST_DECAY + ns;
    c->smt = c->smt * COST_DECAY + m * ns;
    c->dn *= DRAFT_DECAY;
    c->dt *= DRAFT_DECAY;
}

void spec_cost_observe_draft(spec_cost *c, int32_t drafted, double ns) {
    if (drafted < 0 || !(ns > 0)) return;
    c->dn += drafted;
    c->dt += ns;
}

double spec_cost_draft(const spec_cost *c, double prior) {
    if (prior < 0) prior = 0;
    if (c->w < 1 || !(c->dt > 0)) return prior;
    /* a: the mean step's time over 1 + ratio * its mean rows */
    double a = (c->st / c->w) / (1 + spec_cost_ratio(c) * (c->sm / c->w));
    if (!(a > 0)) return prior;
    /* dt/a step costs for dn tokens, and the prior worth DRAFT_PRIOR_TOKENS */
    return (prior * DRAFT_PRIOR_TOKENS + c->dt / a) / (DRAFT_PRIOR_TOKENS + c->dn);
}

double spec_cost_ratio(const spec_cost *c) {
    if (c->w < FIT_MIN_STEPS) return c->prior;
    double mm = c->sm / c->w, mt = c->st / c->w;
    double var = c->smm / c->w - mm * mm;
    if (var < 0.5) return c->prior; /* every step had about the same rows: no slope to see */
    double b = (c->smt / c->w - mm * mt) / var;
    double a = mt - b * mm;
    if (b < 0) b = 0;
    if (a <= 0) return 4.0 * c->prior + 1.0; /* all slope (compute-bound already): rows are dear */
    return b / a;
}

/* the prior: two accepted drafts and one rejection (2/3), so one early
 * rejection does not switch a sequence off before its drafts had a chance */
float spec_seq_alpha(const spec_seq *s) { return (s->acc + 2.0f) / (s->acc + s->rej + 3.0f); }

void spec_seq_update(spec_seq *s, int32_t drafted, int32_t accepted) {
    if (drafted <= 0) return;
    const int rejected = accepted < drafted;
    const float d = (float)pow(SEQ_DECAY, accepted + rejected); /* the positions this verification decided */
    s->acc = s->acc * d + (float)accepted;
    s->rej = s->rej * d + (float)rejected;
}

double spec_extra(double alpha, int32_t k) {
    if (k <= 0) return 0;
    if (alpha >= 1) return k;
    return alpha * (1 - pow(alpha, k)) / (1 - alpha);
}

/* The best k in 0..kmax at acceptance alpha, and whether it beats no drafts. */
static int32_t best_k(double ratio, double alpha, double cost, const spec_step *st, int32_t kmax) {
    double fixed = 1 + st->draft_cost;
    double base = st->tokens / (fixed + ratio * st->rows);
    double best = base * (1 + SPEC_MARGIN);
    int32_t k_best = 0;
    for (int32_t k = 1; k <= kmax; k++) {
        double v = (st->tokens + spec_extra(alpha, k)) / (fixed + cost * k + ratio * (st->rows + k));
        if (v > best) {
            best = v;
            k_best = k;
        }
    }
    return k_best;
}

int32_t spec_choose(const spec_cost *c, spec_seq *s, const spec_step *st, int32_t kmax) {
    if (kmax <= 0) return 0;
    double ratio = spec_cost_ratio(c);
    double cost = s->cost > 0 ? s->cost : 0;
    int32_t k = best_k(ratio, spec_seq_alpha(s), cost, st, kmax);
    if (k > 0) {
        s->idle = 0;
        return k;
    }
    /* off: for the batch's reasons (not even perfect drafts would pay), or
     * for the sequence's own (then probe now and then, if drafting is free:
     * a draft model's probe first feeds it every token since it last ran,
     * which costs more than the probe can win) */
    if (cost > 0 || best_k(ratio, 0.95, cost, st, kmax) == 0) return 0;
    if (++s->idle < SPEC_PROBE_EVERY) return 0;
    s->idle = 0;
    return kmax < SPEC_PROBE_LEN ? kmax : SPEC_PROBE_LEN;
}

void spec_step_add(spec_step *st, const spec_seq *s, int32_t drafted) {
    st->rows += drafted;
    st->tokens += spec_extra(spec_seq_alpha(s), drafted);
    if (s->cost > 0) st->draft_cost += s->cost * drafted;
}
