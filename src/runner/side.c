/* The side thread (side.h): a mutex, one condition variable each way, and a
 * job slot holding at most one job. */
#include "runner/side.h"

#include <pthread.h>
#include <stdlib.h>

struct hl_side {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t job_cv, done_cv;
    void (*fn)(void *arg); /* the job in the slot; NULL when none */
    void *arg;
    int busy;              /* a job was started and has not finished */
    int stop;
};

static void *side_main(void *p) {
    hl_side *s = p;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->fn && !s->stop) pthread_cond_wait(&s->job_cv, &s->mu);
        if (!s->fn) break; /* stop, nothing left */
        void (*fn)(void *) = s->fn;
        void *arg = s->arg;
        s->fn = NULL;
        pthread_mutex_unlock(&s->mu);
        fn(arg);
        pthread_mutex_lock(&s->mu);
        s->busy = 0;
        pthread_cond_signal(&s->done_cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int hl_side_new(hl_side **out, hl_err *err) {
    *out = NULL;
    hl_side *s = calloc(1, sizeof *s);
    if (!s) return hl_err_set(err, HL_ENOMEM, "out of memory for the side thread");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->job_cv, NULL);
    pthread_cond_init(&s->done_cv, NULL);
    if (pthread_create(&s->thread, NULL, side_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->job_cv);
        pthread_cond_destroy(&s->done_cv);
        free(s);
        return hl_err_set(err, HL_ENOMEM, "cannot start the side thread");
    }
    *out = s;
    return 0;
}

void hl_side_start(hl_side *s, void (*fn)(void *arg), void *arg) {
    pthread_mutex_lock(&s->mu);
    s->fn = fn;
    s->arg = arg;
    s->busy = 1;
    pthread_cond_signal(&s->job_cv);
    pthread_mutex_unlock(&s->mu);
}

void hl_side_wait(hl_side *s) {
    pthread_mutex_lock(&s->mu);
    while (s->busy) pthread_cond_wait(&s->done_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

void hl_side_free(hl_side *s) {
    if (!s) return;
    hl_side_wait(s);
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->job_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->job_cv);
    pthread_cond_destroy(&s->done_cv);
    free(s);
}
