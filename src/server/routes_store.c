/* The Ollama store routes, backed by src/store/: POST /api/pull and
 * /api/create (progress streamed as NDJSON from a worker thread, or one final
 * object with stream:false), POST /api/copy, DELETE /api/delete, and
 * HEAD/POST /api/blobs/:digest (uploads are written to a file as they arrive,
 * then checked against the digest). A client that goes away cancels the
 * worker through the store's cancel flag. */
#include "server/internal.h"
#include "base/json_write.h"
#include "base/log.h"
#include "store/modelfile.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct job {
    srv_server *srv;
    int create, stream;
    char *name, *modelfile, *quantize;
    atomic_int cancel;
    pthread_t th;
    int started;
    pthread_mutex_t m;
    hl_buf q;
    int done, rc;
    hl_err err;
    srv_stream *st;
} job;

static void job_wake(job *j) {
    srv_stream *st = __atomic_load_n(&j->st, __ATOMIC_ACQUIRE);
    if (st) srv_stream_wake(st);
}

static void on_progress(void *ctx, const store_progress *p) {
    job *j = ctx;
    if (!j->stream) return;
    hl_buf line = {0};
    hl_jw w;
    hl_jw_init(&w, &line);
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "status"); hl_jw_str(&w, p->status ? p->status : "");
    if (p->digest) { hl_jw_key(&w, "digest"); hl_jw_str(&w, p->digest); }
    if (p->total) { hl_jw_key(&w, "total"); hl_jw_int(&w, p->total); hl_jw_key(&w, "completed"); hl_jw_int(&w, p->completed); }
    hl_jw_obj_end(&w);
    hl_buf_putc(&line, '\n');
    pthread_mutex_lock(&j->m);
    hl_buf_append(&j->q, line.data, line.len);
    pthread_mutex_unlock(&j->m);
    hl_buf_free(&line);
    job_wake(j);
}

static void on_warn(void *ctx, const char *msg) {
    (void)ctx;
    hl_warn("%s", msg);
}

static void *job_main(void *arg) {
    job *j = arg;
    store_ops ops = {0};
    ops.progress = on_progress;
    ops.progress_ctx = j;
    ops.cancel = &j->cancel;
    ops.warn = on_warn;
    ops.quantize = j->quantize;
    hl_err err = {0};
    int rc = j->create ? store_create(j->srv->st, j->name, j->modelfile, strlen(j->modelfile), store_root(j->srv->st), &ops, &err)
                       : store_pull(j->srv->st, j->name, &ops, &err);
    pthread_mutex_lock(&j->m);
    j->rc = rc;
    j->err = err;
    j->done = 1;
    pthread_mutex_unlock(&j->m);
    job_wake(j);
    return NULL;
}

static int job_pull(srv_stream *st, void *ctx, hl_buf *out) {
    job *j = ctx;
    (void)st;
    pthread_mutex_lock(&j->m);
    if (j->q.len) hl_buf_append(out, j->q.data, j->q.len);
    hl_buf_reset(&j->q);
    int done = j->done;
    if (done) {
        if (j->rc) {
            hl_buf_puts(out, "{\"error\":");
            hl_json_escape(out, j->err.msg, strlen(j->err.msg));
            hl_buf_puts(out, "}\n");
        } else {
            hl_buf_puts(out, "{\"status\":\"success\"}\n");
        }
    }
    pthread_mutex_unlock(&j->m);
    return done;
}

static void job_cancel(void *ctx) { atomic_store(&((job *)ctx)->cancel, 1); }

static void job_free(void *ctx) {
    job *j = ctx;
    atomic_store(&j->cancel, 1);
    if (j->started) pthread_join(j->th, NULL);
    hl_buf_free(&j->q);
    pthread_mutex_destroy(&j->m);
    free(j->name);
    free(j->modelfile);
    free(j->quantize);
    free(j);
}

static const char *jstr(struct json_object *root, const char *k) {
    struct json_object *v;
    if (json_object_object_get_ex(root, k, &v) && json_object_is_type(v, json_type_string)) return json_object_get_string(v);
    return NULL;
}

/* The new /api/create fields (from, files, template, system, parameters,
 * messages, license) as Modelfile text; "modelfile" (the old field) wins. */
static int build_modelfile(srv_server *s, struct json_object *root, char **out, hl_err *err) {
    const char *mf = jstr(root, "modelfile");
    if (mf) return (*out = strdup(mf)) ? 0 : HL_ENOMEM;
    store_modelfile m = {0};
    int rc = 0;
    struct json_object *v;
    const char *from = jstr(root, "from");
    char path[4096];
    if (json_object_object_get_ex(root, "files", &v) && json_object_is_type(v, json_type_object)) {
        json_object_object_foreach(v, fname, dig) {
            (void)fname;
            if (!json_object_is_type(dig, json_type_string)) return hl_err_set(err, HL_EINVAL, "\"files\" values must be digests");
            if ((rc = store_blob_path(s->st, json_object_get_string(dig), path, sizeof path, err))) return rc;
            if (access(path, R_OK) != 0) return hl_err_set(err, HL_ENOENT, "blob %s not found: upload it with POST /api/blobs first", json_object_get_string(dig));
            from = path;
            break; /* one GGUF: adapters and projectors are not supported */
        }
    }
    if (!from) return hl_err_set(err, HL_EINVAL, "neither \"from\", \"files\" nor \"modelfile\" was given");
    rc = store_modelfile_add(&m, STORE_MF_FROM, NULL, from, err);
    const char *t;
    if (!rc && (t = jstr(root, "template"))) rc = store_modelfile_add(&m, STORE_MF_TEMPLATE, NULL, t, err);
    if (!rc && (t = jstr(root, "system"))) rc = store_modelfile_add(&m, STORE_MF_SYSTEM, NULL, t, err);
    if (!rc && (t = jstr(root, "license"))) rc = store_modelfile_add(&m, STORE_MF_LICENSE, NULL, t, err);
    if (!rc && json_object_object_get_ex(root, "parameters", &v) && json_object_is_type(v, json_type_object))
        rc = store_params_from_json(json_object_to_json_string(v), &m, err);
    if (!rc && json_object_object_get_ex(root, "messages", &v) && json_object_is_type(v, json_type_array))
        rc = store_messages_from_json(json_object_to_json_string(v), &m, err);
    if (!rc) {
        *out = store_modelfile_format(&m);
        if (!*out) rc = hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    store_modelfile_free(&m);
    return rc;
}

static int route_job(srv_req *r, int create) {
    struct json_object *root;
    hl_err err = {0};
    if (srv_json_parse(r->body.data ? r->body.data : "", r->body.len, &root, &err)) return srv_reply_error(r, 400, err.msg);
    const char *name = jstr(root, "model");
    if (!name) name = jstr(root, "name");
    if (!name || !*name) {
        json_object_put(root);
        return srv_reply_error(r, 400, "model is required");
    }
    snprintf(r->model, sizeof r->model, "%s", name);
    job *j = calloc(1, sizeof *j);
    if (!j) {
        json_object_put(root);
        return srv_reply_error(r, 500, "out of memory");
    }
    pthread_mutex_init(&j->m, NULL);
    j->srv = r->srv;
    j->create = create;
    j->stream = 1;
    struct json_object *v;
    if (json_object_object_get_ex(root, "stream", &v) && json_object_is_type(v, json_type_boolean)) j->stream = json_object_get_boolean(v);
    j->name = strdup(name);
    if (jstr(root, "quantize")) j->quantize = strdup(jstr(root, "quantize"));
    int rc = create ? build_modelfile(r->srv, root, &j->modelfile, &err) : 0;
    json_object_put(root);
    if (rc || !j->name) {
        job_free(j);
        return srv_reply_error(r, srv_status_of(rc ? rc : HL_ENOMEM), rc ? err.msg : "out of memory");
    }
    if (pthread_create(&j->th, NULL, job_main, j) != 0) {
        job_free(j);
        return srv_reply_error(r, 500, "cannot start a worker thread");
    }
    j->started = 1;
    srv_stream *st = NULL;
    rc = srv_reply_stream(r, 200, j->stream ? "application/x-ndjson" : "application/json", job_pull, job_free, job_cancel, j, &st);
    if (st && rc) __atomic_store_n(&j->st, st, __ATOMIC_RELEASE);
    return rc;
}

static int route_blob(srv_req *r, const char *digest) {
    char path[4096];
    hl_err err = {0};
    if (store_blob_path(r->srv->st, digest, path, sizeof path, &err)) return srv_reply_error(r, 400, err.msg);
    struct stat sb;
    if (!strcmp(r->method, "HEAD")) return srv_reply(r, stat(path, &sb) == 0 ? 200 : 404, NULL, "", 0);
    if (strcmp(r->method, "POST")) return srv_reply_error(r, 405, "method not allowed");
    if (r->too_big == 2) return srv_reply_error(r, 500, "writing the upload failed (disk full?)");
    if (r->too_big) return srv_reply_error(r, 413, "upload larger than max_upload");
    if (r->upload_fd < 0) return srv_reply_error(r, 500, "upload was not received");
    if (stat(path, &sb) == 0) return srv_reply(r, 200, NULL, "", 0);
    char got[72];
    int64_t size = 0;
    if (store_blob_put_file(r->srv->st, r->upload_path, 1, got, &size, NULL, &err)) return srv_reply_error(r, 500, err.msg);
    char want[4096];
    store_blob_path(r->srv->st, got, want, sizeof want, NULL);
    if (strcmp(want, path)) {
        unlink(want); /* it arrived under another digest: do not keep it */
        return srv_reply_error(r, 400, "digest mismatch: the uploaded bytes hash to a different sha256");
    }
    return srv_reply(r, 201, NULL, "", 0);
}

int srv_route_store(srv_req *r) {
    const char *u = r->url;
    int is = !strcmp(u, "/api/pull") || !strcmp(u, "/api/create") || !strcmp(u, "/api/copy") ||
             !strcmp(u, "/api/delete") || !strncmp(u, "/api/blobs/", 11);
    if (!is) return -1;
    if (!r->srv->st) return srv_reply_error(r, 500, "the model store is unavailable (see the server log)");
    if (!strncmp(u, "/api/blobs/", 11)) return route_blob(r, u + 11);
    if (!strcmp(u, "/api/pull")) return strcmp(r->method, "POST") ? srv_reply_error(r, 405, "method not allowed") : route_job(r, 0);
    if (!strcmp(u, "/api/create")) return strcmp(r->method, "POST") ? srv_reply_error(r, 405, "method not allowed") : route_job(r, 1);
    struct json_object *root;
    hl_err err = {0};
    if (srv_json_parse(r->body.data ? r->body.data : "", r->body.len, &root, &err)) return srv_reply_error(r, 400, err.msg);
    int rc;
    if (!strcmp(u, "/api/copy")) {
        const char *src = jstr(root, "source"), *dst = jstr(root, "destination");
        if (strcmp(r->method, "POST")) rc = srv_reply_error(r, 405, "method not allowed");
        else if (!src || !dst) rc = srv_reply_error(r, 400, "source and destination are required");
        else if ((rc = store_copy(r->srv->st, src, dst, &err))) rc = srv_reply_error(r, srv_status_of(rc), err.msg);
        else rc = srv_reply(r, 200, NULL, "", 0);
    } else {
        const char *name = jstr(root, "model");
        if (!name) name = jstr(root, "name");
        if (strcmp(r->method, "DELETE")) rc = srv_reply_error(r, 405, "method not allowed");
        else if (!name) rc = srv_reply_error(r, 400, "model is required");
        else if ((rc = store_delete(r->srv->st, name, &err))) {
            char msg[1200];
            snprintf(msg, sizeof msg, rc == HL_ENOENT ? "model '%s' not found" : "%s", rc == HL_ENOENT ? name : err.msg);
            rc = srv_reply_error(r, srv_status_of(rc), msg);
        } else {
            srv_models_unload(&r->srv->models, name);
            rc = srv_reply(r, 200, NULL, "", 0);
        }
    }
    json_object_put(root);
    return rc;
}
