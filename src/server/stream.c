/* Streamed responses without blocking threads: MHD's content reader takes the
 * output that is ready; when there is none it suspends the connection, and the
 * producer (the engine's notify callback, or a store worker) resumes it. A
 * wake counter closes the race between "found nothing" and "suspend": the
 * reader suspends only if no wake arrived since it looked. The producer's
 * lock (the engine handle's) is never held while taking the stream lock in
 * the reader, so the two lock orders cannot cross. The producer's context is
 * freed as soon as its last output is taken, not when MHD is done sending. */
#include "server/internal.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

void srv_stream_wake(srv_stream *st) {
    pthread_mutex_lock(&st->m);
    st->wakes++;
    if (st->suspended) {
        st->suspended = 0;
        MHD_resume_connection(st->conn);
    }
    pthread_mutex_unlock(&st->m);
}

/* Frees the producer's context (a run: its engine handle and its model
 * reference) once its last bytes are in st->out, before they are sent: a
 * client that has read the end of a response and sends its next request
 * finds the model idle (a num_gpu change reloads it then, keep_alive 0
 * has unloaded it). Under the server's stream lock, so that shutdown's
 * cancel loop never sees a freed context. */
static void release_ctx(srv_stream *st) {
    pthread_mutex_lock(&st->srv->lm);
    void (*free_ctx)(void *) = st->free_ctx;
    void *ctx = st->ctx;
    st->free_ctx = NULL, st->cancel = NULL, st->ctx = NULL;
    pthread_mutex_unlock(&st->srv->lm);
    if (free_ctx) free_ctx(ctx);
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
    srv_stream *st = cls;
    (void)pos;
    for (;;) {
        if (st->out_pos < st->out.len) {
            size_t n = st->out.len - st->out_pos;
            if (n > max) n = max;
            memcpy(buf, st->out.data + st->out_pos, n);
            st->out_pos += n;
            return (ssize_t)n;
        }
        if (st->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        if (st->out.oom) return MHD_CONTENT_READER_END_WITH_ERROR;
        pthread_mutex_lock(&st->m);
        uint64_t w0 = st->wakes;
        pthread_mutex_unlock(&st->m);
        hl_buf_reset(&st->out);
        st->out_pos = 0;
        st->finished = st->pull(st, st->ctx, &st->out);
        if (st->finished) release_ctx(st);
        if (st->out.len || st->finished) continue;
        pthread_mutex_lock(&st->m);
        if (st->wakes != w0) {
            pthread_mutex_unlock(&st->m);
            continue;
        }
        st->suspended = 1;
        MHD_suspend_connection(st->conn);
        pthread_mutex_unlock(&st->m);
        return 0;
    }
}

static void stream_free(void *cls) {
    srv_stream *st = cls;
    srv_server *s = st->srv;
    pthread_mutex_lock(&s->lm);
    if (st->prev) st->prev->next = st->next;
    else if (s->streams == st) s->streams = st->next;
    if (st->next) st->next->prev = st->prev;
    pthread_mutex_unlock(&s->lm);
    /* the context goes first (unless the last pull released it): releasing an
     * engine handle guarantees no notify will touch the stream afterwards */
    if (st->free_ctx) st->free_ctx(st->ctx);
    hl_buf_free(&st->out);
    pthread_mutex_destroy(&st->m);
    free(st);
}

int srv_reply_stream(srv_req *r, int status, const char *ctype, srv_pull_fn pull, void (*free_ctx)(void *),
                     void (*cancel)(void *), void *ctx, srv_stream **out) {
    srv_stream *st = calloc(1, sizeof *st);
    if (!st) {
        if (free_ctx) free_ctx(ctx);
        return srv_reply_error(r, 500, "out of memory");
    }
    pthread_mutex_init(&st->m, NULL);
    st->conn = r->conn;
    st->pull = pull;
    st->free_ctx = free_ctx;
    st->cancel = cancel;
    st->ctx = ctx;
    st->srv = r->srv;
    if (out) *out = st;
    pthread_mutex_lock(&r->srv->lm);
    st->next = r->srv->streams;
    if (st->next) st->next->prev = st;
    r->srv->streams = st;
    pthread_mutex_unlock(&r->srv->lm);
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, st, stream_free);
    if (!resp) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    if (r->origin_ok) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->origin);
        MHD_add_response_header(resp, "Vary", "Origin");
    }
    r->status = status;
    int rc = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}
