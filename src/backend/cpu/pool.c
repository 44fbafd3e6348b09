/* The thread pool: persistent workers that sleep on a futex between parallel
 * regions, and a sense-reversing (phase-counting) barrier. Waiting spins on
 * the shared word for a short while (a few microseconds: the common case when
 * every thread is running and the stages are balanced) and then sleeps in the
 * kernel, so a sibling that was descheduled on a busy machine costs its
 * waiters a sleep, not a burnt core. Wake-ups are only issued when someone is
 * asleep, so the all-running case makes no system calls. The caller of
 * hl_pool_run is thread 0; the end of a run is itself a barrier. */
#include "backend/cpu/cpu.h"

#include "base/assert.h"
#include "base/clock.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HL_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define HL_PAUSE() __asm__ volatile("yield")
#else
#define HL_PAUSE() ((void)0)
#endif

/* How long a waiter spins before sleeping, in time rather than iterations
 * because a pause costs 10-140 cycles depending on the core (~24 ns on the
 * Zen 3 we measured): tens of microseconds, about one stage of a small
 * model's decode step, at a barrier — with 5 us, a sibling arriving a little
 * late found the others asleep and every one of SmolLM2's ~210 barriers per
 * token could pay a futex wake-up (2-thread decode 77 t/s; 50 us: 140 t/s on
 * the same machine) — and as long for idle workers waiting for the next run,
 * which usually follows soon. Past that, waiters sleep, so a descheduled
 * sibling never makes the others burn a core. */
#define HL_SPIN_BARRIER_NS 50000
#define HL_SPIN_IDLE_NS 50000

typedef struct {
    alignas(64) _Atomic uint32_t word;
    _Atomic int sleepers;
} hl_futex_word;

struct hl_pool {
    int n;
    /* turns: callers of hl_pool_run (one engine thread per loaded model) take
     * the pool in arrival order, one run at a time (a ticket lock) */
    pthread_mutex_t turn_mu;
    pthread_cond_t turn_cv;
    uint64_t next_ticket, serving;
    int64_t spin_barrier_ns, spin_idle_ns;
    pthread_t *threads;
    struct hl_worker *workers;
    /* run dispatch: fn/ctx are published by the generation bump */
    hl_pool_fn fn;
    void *ctx;
    _Atomic int stop;
    hl_futex_word gen;
    /* barrier: arrivals count, phase flips when the last one arrives */
    alignas(64) _Atomic int bar_count;
    hl_futex_word phase;
};

struct hl_worker {
    hl_pool *pool;
    int ith;
};

static void hl_futex_wait(_Atomic uint32_t *w, uint32_t val) {
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}
static void hl_futex_wake_all(_Atomic uint32_t *w) {
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Waits until f->word != old: spin for about spin_ns, then sleep. */
static void hl_wait_change(hl_futex_word *f, uint32_t old, int64_t spin_ns) {
    int64_t start = 0;
    for (uint32_t i = 1;; i++) {
        if (atomic_load_explicit(&f->word, memory_order_acquire) != old) return;
        HL_PAUSE();
        if ((i & 15) == 0) { /* the clock is ~20 ns: look at it every 16 pauses */
            int64_t now = hl_now_ns();
            if (!start) start = now;
            else if (now - start >= spin_ns) break;
        }
    }
    while (atomic_load_explicit(&f->word, memory_order_acquire) == old) {
        /* seq_cst increment, then the kernel re-checks word: either the waker
         * sees sleepers > 0 or we see the new word (no lost wake-up) */
        atomic_fetch_add(&f->sleepers, 1);
        hl_futex_wait(&f->word, old);
        atomic_fetch_sub(&f->sleepers, 1);
    }
}

static void hl_publish(hl_futex_word *f, uint32_t val) {
    atomic_store(&f->word, val);
    if (atomic_load(&f->sleepers) > 0) hl_futex_wake_all(&f->word);
}

void hl_pool_barrier(hl_pool *pool) {
    if (pool->n <= 1) return;
    /* read the phase before arriving: it cannot flip until we have arrived */
    uint32_t ph = atomic_load(&pool->phase.word);
    if (atomic_fetch_add(&pool->bar_count, 1) == pool->n - 1) {
        atomic_store(&pool->bar_count, 0);
        hl_publish(&pool->phase, ph + 1);
    } else {
        hl_wait_change(&pool->phase, ph, pool->spin_barrier_ns);
    }
}

static void *hl_worker_main(void *arg) {
    struct hl_worker *wk = arg;
    hl_pool *pool = wk->pool;
    uint32_t seen = 0;
    for (;;) {
        hl_wait_change(&pool->gen, seen, pool->spin_idle_ns);
        seen = atomic_load(&pool->gen.word);
        if (atomic_load(&pool->stop)) break;
        pool->fn(pool->ctx, wk->ith, pool->n);
        hl_pool_barrier(pool);
    }
    return NULL;
}

hl_pool *hl_pool_new(int n_threads) {
    if (n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (int)c : 1;
    }
    if (n_threads > 512) n_threads = 512;
    hl_pool *pool = aligned_alloc(64, (sizeof(hl_pool) + 63) / 64 * 64);
    if (!pool) return NULL;
    *pool = (hl_pool){.n = n_threads, .spin_barrier_ns = HL_SPIN_BARRIER_NS, .spin_idle_ns = HL_SPIN_IDLE_NS};
    pthread_mutex_init(&pool->turn_mu, NULL);
    pthread_cond_init(&pool->turn_cv, NULL);
    pool->threads = calloc((size_t)n_threads, sizeof(pthread_t));
    pool->workers = calloc((size_t)n_threads, sizeof(struct hl_worker));
    if (!pool->threads || !pool->workers) {
        free(pool->threads);
        free(pool->workers);
        free(pool);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        pool->workers[i] = (struct hl_worker){pool, i};
        if (pthread_create(&pool->threads[i], NULL, hl_worker_main, &pool->workers[i]) != 0) {
            /* run with the threads we got: shrink and stop here */
            pool->n = i;
            break;
        }
    }
    return pool;
}

int hl_pool_size(const hl_pool *pool) { return pool->n; }

void hl_pool_set_spin(hl_pool *pool, int barrier_us, int idle_us) {
    if (barrier_us >= 0) pool->spin_barrier_ns = (int64_t)barrier_us * 1000;
    if (idle_us >= 0) pool->spin_idle_ns = (int64_t)idle_us * 1000;
}

void hl_pool_run(hl_pool *pool, hl_pool_fn fn, void *ctx) {
    if (pool->n <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_mutex_lock(&pool->turn_mu);
    uint64_t ticket = pool->next_ticket++;
    while (pool->serving != ticket) pthread_cond_wait(&pool->turn_cv, &pool->turn_mu);
    pthread_mutex_unlock(&pool->turn_mu);
    pool->fn = fn;
    pool->ctx = ctx;
    hl_publish(&pool->gen, atomic_load(&pool->gen.word) + 1);
    fn(ctx, 0, pool->n);
    hl_pool_barrier(pool);
    pthread_mutex_lock(&pool->turn_mu);
    pool->serving++;
    pthread_cond_broadcast(&pool->turn_cv);
    pthread_mutex_unlock(&pool->turn_mu);
}

void hl_pool_free(hl_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->stop, 1);
    if (pool->n > 1) hl_publish(&pool->gen, atomic_load(&pool->gen.word) + 1);
    for (int i = 1; i < pool->n; i++) pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->turn_mu);
    pthread_cond_destroy(&pool->turn_cv);
    free(pool->threads);
    free(pool->workers);
    free(pool);
}
