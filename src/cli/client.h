/* The command line's HTTP client: how the verbs talk to a running `hyperlama
 * serve`, as Ollama's CLI talks to its server. It owns the server address
 * (HYPERLAMA_HOST, parsed exactly as the server parses it), starting a server
 * in the background when none answers (detached, logging to
 * ~/.hyperlama/logs/server.log), JSON requests whose failures carry the
 * server's own message, and NDJSON streams read line by line with a per-line
 * callback and a cancel flag (Ctrl+C closes the connection, which the server
 * takes as a cancel). Transport is libcurl; nothing here prints. */
#ifndef HL_CLI_CLIENT_H
#define HL_CLI_CLIENT_H

#include "base/buf.h"
#include "base/err.h"

#include <signal.h>
#include <stddef.h>

struct json_object;

typedef struct cli_client {
    char base[320];      /* "http://127.0.0.1:11434", no trailing slash */
    char host[256];      /* as configured (0.0.0.0 when every interface) */
    int port;
    char auth[300];      /* "Authorization: Bearer ..." or empty (HYPERLAMA_API_KEY) */
    const volatile sig_atomic_t *cancel; /* borrowed; nonzero aborts a running request */
    int started;         /* this process started the server */
} cli_client;

/* Reads HYPERLAMA_HOST (default 127.0.0.1:11434) and HYPERLAMA_API_KEY. */
int cli_client_init(cli_client *c, hl_err *err);

/* Nonzero when something answers HTTP at the address (within ~1 s). */
int cli_client_ping(cli_client *c);

/* Makes sure a server answers: pings, and when none does and the address is
 * this machine's (loopback, or every interface), starts
 * `/proc/self/exe serve` detached (setsid; stdout/stderr appended to
 * ~/.hyperlama/logs/server.log; its pid in ~/.hyperlama/logs/server.pid) and
 * waits up to timeout_ms for it to answer. The child inherits this process's
 * environment, so HYPERLAMA_HOST and HYPERLAMA_MODELS carry over. */
int cli_client_ensure(cli_client *c, int timeout_ms, hl_err *err);

/* Where the auto-started server logs (and its pid file). */
void cli_client_log_path(char *out, size_t cap);
void cli_client_pid_path(char *out, size_t cap);

/* One request. body may be NULL (no body). On success (2xx) returns 0 and
 * the response body in *resp (when resp is non-NULL; caller frees with
 * hl_buf_free). Otherwise fills err with the server's "error" message (or
 * the transport's) and returns HL_ENOENT for 404, HL_EINVAL for other 4xx,
 * HL_EIO otherwise. *status gets the HTTP status (0 when none). */
int cli_request(cli_client *c, const char *method, const char *path, const char *body, long *status, hl_buf *resp,
                hl_err *err);

/* The same, parsing the response as JSON (*out: caller puts; NULL for an
 * empty body). */
int cli_json(cli_client *c, const char *method, const char *path, const char *body, struct json_object **out,
             hl_err *err);

/* Called for each JSON object of an NDJSON stream (borrowed: valid during the
 * call). Returning nonzero stops the stream (the connection is closed). */
typedef int (*cli_line_fn)(void *ctx, struct json_object *obj);

/* POSTs body to path and feeds each line of the response to fn. A line
 * {"error": "..."} ends the stream with that message as the error. Returns 1
 * when the stream was stopped by fn or by the cancel flag (not an error). A
 * non-streamed JSON reply (one object) is handed to fn as one line. */
int cli_stream(cli_client *c, const char *path, const char *body, cli_line_fn fn, void *ctx, hl_err *err);

/* Uploads a file as a blob (POST /api/blobs/sha256:..., skipped when HEAD
 * finds it there) and returns its digest ("sha256:<hex>"). */
int cli_upload_blob(cli_client *c, const char *path, char digest[72], hl_err *err);
/* Nonzero when the server address is this machine (so it sees our files). */
int cli_client_is_local(const cli_client *c);

/* Text of member key when it is a string, else NULL (borrowed). */
const char *cli_jstr(struct json_object *o, const char *key);
/* Member key as an integer (0 when absent). */
long long cli_jint(struct json_object *o, const char *key);

#endif
