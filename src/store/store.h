/* The model store: Ollama's on-disk layout (content-addressed blobs and
 * Docker-v2-style manifests), a SQLite index for fast listing, Modelfiles,
 * `create`, registry pulls and imports from an existing Ollama store.
 *
 * Layout under the root (~/.hyperlama/models, or $HYPERLAMA_MODELS):
 *   blobs/sha256-<64 hex>                       immutable, named by content hash
 *   blobs/sha256-<64 hex>-partial               a download in progress (resumable)
 *   manifests/<host>/<namespace>/<model>/<tag>  JSON manifest (config + layers)
 *   index.db                                    SQLite cache of metadata
 * The files are the source of truth; the index is rebuilt from them whenever a
 * manifest is missing from it or changed. Every write is atomic (temporary file,
 * fsync, rename): blobs land before the manifest that names them, so a crash
 * leaves either the old model or the new, at worst plus unreferenced blobs.
 *
 * Errors are values (hl_err); the library never prints. Long operations take a
 * progress callback (the server streams it as NDJSON) and a cancel flag. */
#ifndef HL_STORE_H
#define HL_STORE_H

#include "base/err.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ---- names ---- */
#define STORE_DEFAULT_HOST "registry.ollama.ai"
#define STORE_DEFAULT_NS "library"
#define STORE_DEFAULT_TAG "latest"
#define STORE_PART_MAX 128 /* longest host/namespace/model/tag part */

typedef struct store_name {
    char host[STORE_PART_MAX + 1], ns[STORE_PART_MAX + 1], model[STORE_PART_MAX + 1], tag[STORE_PART_MAX + 1];
} store_name;

/* Parses [host/][namespace/]model[:tag] with Ollama's defaults. Rejects empty
 * parts, "." and "..", characters outside [A-Za-z0-9_.-] (host may carry
 * ":port"), parts longer than STORE_PART_MAX. Model and namespace are kept as
 * written; comparisons are case-insensitive as in Ollama. */
int store_name_parse(const char *s, store_name *out, hl_err *err);
/* host/ns/model:tag */
void store_name_full(const store_name *n, char *out, size_t cap);
/* The shortest form Ollama displays: drops the default host and namespace. */
void store_name_display(const store_name *n, char *out, size_t cap);

/* ---- the store ---- */
typedef struct store store;

/* root NULL: $HYPERLAMA_MODELS or ~/.hyperlama/models. Creates the folders. */
int store_open(store **out, const char *root, hl_err *err);
void store_close(store *s);
const char *store_root(const store *s);
/* Path of blob "sha256:<hex>" (or "sha256-<hex>") into out. */
int store_blob_path(const store *s, const char *digest, char *out, size_t cap, hl_err *err);

/* Ollama's media types */
#define STORE_MT_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define STORE_MT_CONFIG "application/vnd.docker.container.image.v1+json"
#define STORE_MT_MODEL "application/vnd.ollama.image.model"
#define STORE_MT_TEMPLATE "application/vnd.ollama.image.template"
#define STORE_MT_SYSTEM "application/vnd.ollama.image.system"
#define STORE_MT_PARAMS "application/vnd.ollama.image.params"
#define STORE_MT_MESSAGES "application/vnd.ollama.image.messages"
#define STORE_MT_LICENSE "application/vnd.ollama.image.license"
#define STORE_MT_ADAPTER "application/vnd.ollama.image.adapter"
#define STORE_MT_PROJECTOR "application/vnd.ollama.image.projector"

typedef struct store_layer {
    char media_type[128];
    char digest[72]; /* "sha256:<64 hex>" */
    int64_t size;
} store_layer;

#define STORE_MAX_LAYERS 64
typedef struct store_manifest {
    store_layer config;
    store_layer layers[STORE_MAX_LAYERS];
    int n_layers;
    char id[65]; /* sha256 hex of the manifest file's bytes */
    int64_t total_size; /* layers + config, as Ollama's list sums it */
} store_manifest;

/* Parses manifest JSON (untrusted: size-limited, digests validated). */
int store_manifest_parse(const char *json, size_t len, store_manifest *out, hl_err *err);
/* Reads the manifest of a name; HL_ENOENT when there is none. */
int store_manifest_read(store *s, const store_name *n, store_manifest *out, hl_err *err);

/* ---- listing and details ---- */
typedef struct store_info {
    char name[4 * STORE_PART_MAX + 8]; /* display form */
    char full[4 * STORE_PART_MAX + 8];
    char id[13];          /* first 12 hex of the manifest digest */
    char digest[65];      /* manifest digest (hex) */
    int64_t size;         /* bytes, layers + config */
    int64_t modified;     /* unix seconds (manifest mtime) */
    int64_t last_used;    /* unix seconds, 0 = never */
    char arch[64];        /* general.architecture */
    int64_t n_params;     /* parameter count (sum of tensor elements) */
    char quant[32];       /* file type ("Q4_K_M", "F16" ...) */
    int64_t ctx_len, embd_len;
    char family[64];
} store_info;

/* Every model, sorted by modified time (newest first), as `list` shows them.
 * Refreshes the index from the manifests first. Caller frees *out. */
int store_list(store *s, store_info **out, size_t *n, hl_err *err);
/* One model's info; HL_ENOENT (with near matches in the message) if absent. */
int store_info_get(store *s, const char *name, store_info *out, hl_err *err);

/* What `run` needs, and what `show` prints. Every string is malloc'ed (NULL
 * when the layer is absent); free with store_model_free. */
typedef struct store_model {
    store_info info;
    char *model_path;    /* the GGUF blob */
    char *projector_path;
    char *template_text; /* Go template */
    char *system;
    char *license;       /* all LICENSE layers, joined by blank lines */
    char *params_json;   /* JSON object {"stop":[...], "temperature":0.7} */
    char *messages_json; /* JSON array [{"role":..,"content":..}] */
    int has_adapter;
} store_model;

/* Resolves a name (short or full) to its files and touches last-used. */
int store_resolve(store *s, const char *name, store_model *out, hl_err *err);
/* Same, without touching last-used (for show). */
int store_load(store *s, const char *name, store_model *out, hl_err *err);
void store_model_free(store_model *m);
/* A Modelfile that recreates the model (FROM is the blob path). */
char *store_modelfile_of(const store_model *m, const char *name);

/* Names within edit distance 3 of name (or containing it), for "did you
 * mean". Returns a malloc'ed ", "-separated list or NULL. */
char *store_suggest(store *s, const char *name);

/* ---- changing the store ---- */
int store_delete(store *s, const char *name, hl_err *err);
int store_copy(store *s, const char *src, const char *dst, hl_err *err);

/* Progress reports, Ollama's shape: {status, digest, total, completed}. */
typedef struct store_progress {
    const char *status;
    const char *digest; /* NULL when not about one blob */
    int64_t total, completed;
} store_progress;
typedef void (*store_progress_fn)(void *ctx, const store_progress *p);

typedef struct store_ops {
    store_progress_fn progress; /* may be NULL */
    void *progress_ctx;
    const atomic_int *cancel;   /* nonzero: stop soon with HL_EIO "cancelled" */
    const char *quantize;       /* create: "q4_K_M", "q8_0" ...; NULL = keep */
    int threads;                /* create --quantize; 0 = all cores */
    int insecure;               /* pull: allow http to non-loopback hosts */
    const char *registry;       /* base URL for the default host; NULL = $HYPERLAMA_REGISTRY or https */
    int parallel;               /* pull: blobs at once (0 = 4) */
    /* warnings (deprecated parameters ...) are reported here when non-NULL */
    void (*warn)(void *ctx, const char *msg);
} store_ops;

/* Writes data as a blob (atomic), returns its digest "sha256:<hex>". */
int store_blob_put(store *s, const void *data, size_t len, char digest[72], hl_err *err);
/* Copies (or hard-links when link != 0 and possible) a file in as a blob. */
int store_blob_put_file(store *s, const char *path, int link, char digest[72], int64_t *size,
                        const store_ops *ops, hl_err *err);
/* Writes a manifest for name from its layers (the config blob is built from
 * the model layer's GGUF metadata). Atomic; the index is updated. */
int store_write_manifest(store *s, const store_name *n, const store_layer *layers, int n_layers,
                         hl_err *err);

/* create NAME from Modelfile text; base_dir resolves relative FROM/ADAPTER paths. */
int store_create(store *s, const char *name, const char *modelfile, size_t len, const char *base_dir,
                 const store_ops *ops, hl_err *err);
/* pull NAME | hf.co/ORG/REPO[:QUANT] | https://.../file.gguf */
int store_pull(store *s, const char *name, const store_ops *ops, hl_err *err);
/* import from an Ollama store (root NULL: $OLLAMA_MODELS or ~/.ollama/models);
 * name NULL imports every model. *n_imported counts manifests brought in. */
int store_import_ollama(store *s, const char *ollama_root, const char *name, const store_ops *ops,
                        int *n_imported, hl_err *err);

/* ---- formatting helpers (Ollama's) ---- */
void store_human_bytes(int64_t b, char *out, size_t cap);      /* "1.1 GB" */
void store_human_time(int64_t then, int64_t now, char *out, size_t cap); /* "2 minutes ago" */
void store_human_params(int64_t n, char *out, size_t cap);     /* "8.0B", "260.0K" */

#endif
