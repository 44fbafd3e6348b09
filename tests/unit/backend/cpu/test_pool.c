/* Tests for the thread pool: every thread runs exactly once per hl_pool_run,
 * barriers really separate phases (no thread sees a stale value written
 * before the barrier by another), under many runs and many barriers, with
 * more threads than cores (so siblings get descheduled and waiters must
 * sleep), and pools created and freed repeatedly. */
#include "harness.h"

#include "backend/cpu/cpu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
    hl_pool *pool;
    int n_barriers;
    int *slots;          /* one per thread */
    _Atomic int errors;
    _Atomic int calls;
} stress_ctx;

/* Phase p: each thread writes p into its slot, barrier, then checks that every
 * slot holds p, barrier (so nobody writes p + 1 while another still reads). */
static void stress_fn(void *vctx, int ith, int nth) {
    stress_ctx *c = vctx;
    atomic_fetch_add(&c->calls, 1);
    for (int p = 0; p < c->n_barriers; p++) {
        __atomic_store_n(&c->slots[ith], p, __ATOMIC_RELAXED);
        hl_pool_barrier(c->pool);
        for (int t = 0; t < nth; t++)
            if (__atomic_load_n(&c->slots[t], __ATOMIC_RELAXED) != p) atomic_fetch_add(&c->errors, 1);
        hl_pool_barrier(c->pool);
    }
}

static void stress(int nt, int runs, int barriers) {
    hl_pool *pool = hl_pool_new(nt);
    CHECK(pool != NULL);
    CHECK_EQ(hl_pool_size(pool), nt);
    stress_ctx c = {.pool = pool, .n_barriers = barriers};
    c.slots = calloc((size_t)nt, sizeof(int));
    for (int r = 0; r < runs; r++) hl_pool_run(pool, stress_fn, &c);
    CHECK_EQ(atomic_load(&c.errors), 0);
    CHECK_EQ(atomic_load(&c.calls), nt * runs);
    free(c.slots);
    hl_pool_free(pool);
}

TEST(pool_one_thread) { stress(1, 10, 10); }
TEST(pool_two_threads_many_barriers) { stress(2, 200, 200); }
TEST(pool_three_threads_oversubscribed) { stress(3, 100, 100); }
TEST(pool_eight_threads_oversubscribed) { stress(8, 20, 50); }
TEST(pool_many_short_runs) { stress(2, 20000, 0); }

TEST(pool_create_free_repeatedly) {
    for (int i = 0; i < 50; i++) stress(1 + i % 4, 2, 2);
}

typedef struct {
    _Atomic long sum;
} sum_ctx;
static void sum_fn(void *vctx, int ith, int nth) {
    sum_ctx *c = vctx;
    atomic_fetch_add(&c->sum, ith + 1);
    (void)nth;
}

TEST(pool_reuse_sums) {
    hl_pool *pool = hl_pool_new(3);
    for (int r = 0; r < 1000; r++) {
        sum_ctx c = {0};
        hl_pool_run(pool, sum_fn, &c);
        if (atomic_load(&c.sum) != 6) {
            CHECK_EQ(atomic_load(&c.sum), 6);
            break;
        }
    }
    hl_pool_free(pool);
}

TEST(pool_default_size_is_cores) {
    hl_pool *pool = hl_pool_new(0);
    hl_cpu_info ci;
    hl_cpu_detect(&ci);
    CHECK_EQ(hl_pool_size(pool), ci.n_cores);
    hl_pool_free(pool);
}

/* One pool per process, shared by every loaded model: two engine threads
 * calling hl_pool_run at once take turns, whole run by whole run (a run never
 * sees another's threads inside it), and neither starves: while the other
 * caller is waiting, the next run is its. Each run lasts until the other
 * caller has a call announced that has not started yet and has had a
 * millisecond to queue it, so the order does not depend on how the machine
 * schedules the two threads (and no run waits for a call that is already
 * queued behind it). */
typedef struct {
    hl_pool *pool;
    _Atomic int inside;      /* threads currently inside any run */
    _Atomic int overlaps;    /* a thread found another run's thread inside */
    _Atomic int wanting[3];  /* calls announced by caller 1 and 2 */
    _Atomic int started[3];  /* their runs begun */
    _Atomic int done[3];     /* callers finished */
    int owner[512];          /* caller of the k-th run, in run order */
    _Atomic int n_runs;
} turns_ctx;

typedef struct {
    turns_ctx *t;
    int who, runs;
} turns_caller;

static void turns_fn(void *vctx, int ith, int nth) {
    turns_caller *c = vctx;
    turns_ctx *t = c->t;
    int other = 3 - c->who;
    if (ith == 0) {
        t->owner[atomic_fetch_add(&t->n_runs, 1)] = c->who;
        atomic_fetch_add(&t->started[c->who], 1);
        /* until the other caller has announced a call it has not begun */
        for (int i = 0; i < 2000 && !atomic_load(&t->done[other]) &&
                        atomic_load(&t->wanting[other]) <= atomic_load(&t->started[other]);
             i++)
            usleep(100);
        usleep(1000); /* time to take its ticket */
    }
    int now = atomic_fetch_add(&t->inside, 1) + 1;
    if (now > nth) atomic_fetch_add(&t->overlaps, 1);
    hl_pool_barrier(t->pool);
    atomic_fetch_sub(&t->inside, 1);
    hl_pool_barrier(t->pool);
}

static void *turns_main(void *arg) {
    turns_caller *c = arg;
    for (int i = 0; i < c->runs; i++) {
        atomic_fetch_add(&c->t->wanting[c->who], 1);
        hl_pool_run(c->t->pool, turns_fn, c);
    }
    atomic_store(&c->t->done[c->who], 1);
    return NULL;
}

TEST(pool_shared_by_two_callers_takes_turns) {
    turns_ctx *t = calloc(1, sizeof *t);
    t->pool = hl_pool_new(2);
    turns_caller a = {t, 1, 100}, b = {t, 2, 100};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, turns_main, &a);
    pthread_create(&tb, NULL, turns_main, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK_EQ(atomic_load(&t->n_runs), 200);
    CHECK_EQ(atomic_load(&t->overlaps), 0);
    /* FIFO turns: the owner alternates, except at the start (the second
     * caller may not have arrived) and the end (one caller is done) */
    int repeats = 0;
    for (int k = 1; k < 200; k++) repeats += t->owner[k] == t->owner[k - 1];
    printf("     runs back to back by the same caller: %d of 199\n", repeats);
    CHECK(repeats <= 4);
    hl_pool_free(t->pool);
    free(t);
}
