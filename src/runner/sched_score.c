/* Prompt scoring (hl_request.prompt_logprobs): the log-probability of each
 * prompt token given the ones before it, what OpenAI's legacy completions
 * return with echo and logprobs and what log-likelihood evaluations
 * (lm-eval-harness) read.
 *
 * A scoring sequence's prefill chunks carry logits on every position; row j
 * of a chunk starting at position p predicts the token at p + j + 1. Each
 * row is scored from the model's raw logits (log-softmax in double, no
 * sampler chain) with the n_top_logprobs most likely alternatives, and sent
 * as a PROMPT event. lp_next remembers how far scoring got, so a sequence
 * recomputed after preemption scores no position twice. Runs on the engine
 * thread: scoring is O(vocab) per prompt token, small beside the forward
 * pass that produced the row. */
#include "runner/engine_impl.h"

#include <math.h>

static void score_row(const float *row, int32_t n_vocab, int32_t token, int32_t n_top, hl_token_logprobs *lp) {
    float mx = -INFINITY;
    for (int32_t v = 0; v < n_vocab; v++)
        if (row[v] > mx) mx = row[v];
    double sum = 0;
    for (int32_t v = 0; v < n_vocab; v++) sum += exp((double)row[v] - (double)mx);
    double lse = (double)mx + log(sum);
    lp->chosen = (hl_token_logprob){token, (float)((double)row[token] - lse)};
    /* the n_top largest, most likely first; ties by lower id (insertion keeps it) */
    lp->n_top = 0;
    for (int32_t v = 0; v < n_vocab && n_top > 0; v++) {
        float x = row[v];
        if (lp->n_top == n_top && x <= row[lp->top[n_top - 1].token]) continue;
        int32_t k = lp->n_top < n_top ? lp->n_top++ : n_top - 1;
        while (k > 0 && row[lp->top[k - 1].token] < x) {
            lp->top[k] = lp->top[k - 1];
            k--;
        }
        lp->top[k].token = v;
    }
    for (int32_t k = 0; k < lp->n_top; k++) lp->top[k].logprob = (float)((double)row[lp->top[k].token] - lse);
}

void sched_score_prompt(hl_engine *e, seq *s, int32_t row0, int32_t pos0, int32_t n) {
    int32_t n_top = s->h->sampling.n_top_logprobs;
    if (n_top > HL_SAMPLER_MAX_TOP_LOGPROBS) n_top = HL_SAMPLER_MAX_TOP_LOGPROBS;
    for (int32_t j = 0; j < n; j++) {
        int32_t next = pos0 + j + 1; /* the position this row predicts */
        if (next < s->lp_next || next >= s->n_prompt) continue;
        hl_token_logprobs lp;
        score_row(e->logits + (size_t)(row0 + j) * (size_t)e->n_vocab, e->n_vocab, s->tokens[next], n_top, &lp);
        ev_push_prompt(e, s, &lp);
        s->lp_next = next + 1;
    }
}
