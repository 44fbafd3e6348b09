/* Adaptive speculation: how many drafted tokens each sequence asks its
 * drafter for in a step, from a cost model of the step and the sequence's
 * recent acceptance. The scheduler (sched.c) is its only user; this is the
 * one mechanism that turns speculation up, down and off.
 *
 * The cost model. A step of m rows costs T(m) = a + b*m: a is reading the
 * weights once (memory-bound), b the compute per row. Only b/a matters; it
 * starts at a prior (measured on the development machine: 2 cores, 0.5 for
 * both Qwen2.5-Coder-1.5B and SmolLM2, bench_forward -s 1..16) and is fitted
 * online from the engine's own decode-only steps (least squares over
 * (rows, ns) with exponential forgetting) once their row counts vary enough,
 * so a GPU, where rows are nearly free, learns a small ratio by itself.
 *
 * A draft model costs time of its own: each drafted token costs s->cost
 * step fixed costs, added to the step's T; prompt lookup costs nothing.
 * The engine times its drafter calls (catch-ups included) and the cost is
 * that measurement over the step's fixed cost a, blended with the
 * drafter's prior (its weight bytes over the target's) while few tokens
 * were timed; the measurements fade with every step, slowly (~1000 steps),
 * so a draft that was too dear to use (and so is not timed any more) is
 * tried again much later: a retry pays a catch-up of every token since the
 * draft last ran, so frequent retries would cost what the draft saves.
 *
 * Acceptance. A sequence's drafts are accepted position by position with
 * probability alpha, estimated from its last ~30 verified positions (counts
 * of accepted drafts and of rejections, decayed per position decided, with a
 * weak prior of 2/3).
 * k drafts then yield alpha + alpha^2 + ... + alpha^k extra tokens on average.
 *
 * The choice. With the step so far at R rows expecting G tokens, a sequence
 * drafts the k that maximizes (G + extra(k)) / T(R + k), if that beats
 * G / T(R) by a margin; so drafting fades as the batch grows (a row's cost
 * is paid by every token of the step: the step is compute-bound) and as
 * acceptance falls. A sequence that would not draft at all even with
 * perfect acceptance is off for the batch's reasons; one that would but not
 * at its own alpha is off for its own, and re-probes with a short draft
 * every SPEC_PROBE_EVERY steps, so a text that turns repetitive is noticed;
 * only a free drafter (prompt lookup) probes: a draft model's probe would
 * first feed it every token since it last ran (on 2 CPU cores a
 * 450-token catch-up of the 0.5B draft costs ~4 s, a whole request's decode). */
#ifndef HL_RUNNER_SPEC_H
#define HL_RUNNER_SPEC_H

#include <stdint.h>

#define SPEC_DEFAULT_ROW_COST 0.5 /* prior b/a */
#define SPEC_PROBE_EVERY 16       /* steps between probes of a sequence that stopped drafting */
#define SPEC_PROBE_LEN 1          /* drafts of a probe */
#define SPEC_MARGIN 0.03          /* relative gain a draft must promise */

/* One sequence's acceptance history. Zero-initialized is the prior. */
typedef struct spec_seq {
    float acc, rej; /* decayed counts: drafts accepted, verifications that rejected one */
    int32_t idle;   /* steps since it last drafted (or was offered a probe) */
    double cost;    /* its drafter's cost of one drafted token, in step fixed costs (0: free) */
} spec_seq;

/* The engine's step-cost model. */
typedef struct spec_cost {
    double prior;                  /* b/a before the fit takes over */
    double w, sm, smm, st, smt;    /* decayed sums over observed steps: 1, m, m^2, t, m*t */
    double dn, dt;                 /* decayed sums over drafter calls: tokens drafted, ns */
} spec_cost;

/* A step being planned: rows placed, tokens they are expected to yield, and
 * the drafting cost spent on it (in step fixed costs). */
typedef struct spec_step {
    double rows, tokens, draft_cost;
} spec_step;

void spec_cost_init(spec_cost *c, double prior);
/* A decode-only step of `rows` rows took ns nanoseconds. */
void spec_cost_observe(spec_cost *c, int32_t rows, double ns);
/* b/a: the cost of a row relative to a step's fixed cost. */
double spec_cost_ratio(const spec_cost *c);
/* A drafter call that drafted `drafted` tokens took ns nanoseconds. */
void spec_cost_observe_draft(spec_cost *c, int32_t drafted, double ns);
/* A drafted token's cost in step fixed costs: the timed calls over a,
 * blended with prior (the drafter's own estimate) while few were timed. */
double spec_cost_draft(const spec_cost *c, double prior);

float spec_seq_alpha(const spec_seq *s);
/* The sequence verified `drafted` drafts and accepted `accepted` of them. */
void spec_seq_update(spec_seq *s, int32_t drafted, int32_t accepted);
/* Expected accepted drafts of k at acceptance alpha. */
double spec_extra(double alpha, int32_t k);

/* How many drafts (0..kmax) sequence s should ask for in the step st (which
 * already counts this sequence's own row and token). Counts the idle steps
 * and probes. Call spec_step_add with what was actually drafted. */
int32_t spec_choose(const spec_cost *c, spec_seq *s, const spec_step *st, int32_t kmax);
void spec_step_add(spec_step *st, const spec_seq *s, int32_t drafted);

#endif
