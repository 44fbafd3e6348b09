/* The backend registry: the one place that maps a backend's name to its
 * constructor. Everything above model/ names a backend at most (a setting)
 * and holds it as an opaque hl_backend. */
#include "model/model.h"

#include "backend/ref/ref.h"

#include <string.h>

const char *hl_backend_names(void) { return "auto, cpu, ref"; }

int hl_backend_open(hl_backend **out, const char *name, hl_pool *pool, hl_err *err) {
    *out = NULL;
    if (!name || !strcmp(name, "auto") || !strcmp(name, "cpu")) {
        if (!pool) return hl_err_set(err, HL_EINVAL, "the CPU backend needs a thread pool");
        return hl_backend_cpu_new(out, &(hl_cpu_backend_params){.pool = pool, .threads = HL_THREADS_AUTO}, err);
    }
    if (!strcmp(name, "ref")) return hl_backend_ref_new(out, err);
    return hl_err_set(err, HL_EINVAL, "unknown backend '%s' (choose one of: %s)", name, hl_backend_names());
}
