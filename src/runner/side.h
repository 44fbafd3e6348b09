/* One helper thread for work that runs beside the engine thread's forward
 * pass: the engine starts a job, runs the forward pass, then waits for the
 * job. Used where the forward pass leaves the host's cores idle (a GPU
 * backend), to compute the next grammar masks meanwhile (sched.c).
 *
 * Ownership: the engine owns one hl_side; start and wait are called from the
 * engine thread only, alternately (start, wait, start, wait, ...). */
#ifndef HL_RUNNER_SIDE_H
#define HL_RUNNER_SIDE_H

#include "base/err.h"

typedef struct hl_side hl_side;

int hl_side_new(hl_side **out, hl_err *err);
/* Runs fn(arg) on the helper thread; returns at once. */
void hl_side_start(hl_side *s, void (*fn)(void *arg), void *arg);
/* Returns once the job of the last start has finished (at once if none). */
void hl_side_wait(hl_side *s);
/* Waits for a job in flight, stops the thread, frees. NULL is a no-op. */
void hl_side_free(hl_side *s);

#endif
