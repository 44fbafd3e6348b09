/* The backend registry: the one place that maps a backend's name to its
 * constructor. Everything above model/ names a backend at most (a setting)
 * and holds it as an opaque hl_backend. */
#include "model/model.h"

#include "backend/ref/ref.h"
#include "backend/vulkan/vulkan.h"

#include <stdlib.h>
#include <string.h>

const char *hl_backend_names(void) { return "auto, cpu, ref, vulkan, vulkan:N"; }

/* vulkan:N with N a device index, or -1 */
static int vulkan_index(const char *name) {
    if (strncmp(name, "vulkan:", 7) || !name[7]) return -1;
    char *end = NULL;
    long dev = strtol(name + 7, &end, 10);
    return *end || dev < 0 || dev > 64 ? -1 : (int)dev;
}

int hl_backend_name_valid(const char *name) {
    return name && (!strcmp(name, "auto") || !strcmp(name, "cpu") || !strcmp(name, "ref") || !strcmp(name, "vulkan") ||
                    vulkan_index(name) >= 0);
}

int hl_backend_open(hl_backend **out, const char *name, hl_pool *pool, hl_err *err) {
    *out = NULL;
    if (!name || !strcmp(name, "auto") || !strcmp(name, "cpu")) {
        if (!pool) return hl_err_set(err, HL_EINVAL, "the CPU backend needs a thread pool");
        return hl_backend_cpu_new(out, &(hl_cpu_backend_params){.pool = pool, .threads = HL_THREADS_AUTO}, err);
    }
    if (!strcmp(name, "ref")) return hl_backend_ref_new(out, err);
    /* vulkan: the GPU with the most memory (never a CPU implementation);
     * vulkan:N: device N of the loader's list, whatever it is (lavapipe too) */
    if (!strcmp(name, "vulkan")) return hl_backend_vulkan_new(out, &(hl_vulkan_backend_params){.device = -1}, err);
    if (vulkan_index(name) >= 0)
        return hl_backend_vulkan_new(out, &(hl_vulkan_backend_params){.device = vulkan_index(name), .allow_cpu = 1}, err);
    return hl_err_set(err, HL_EINVAL, "unknown backend '%s' (choose one of: %s)", name, hl_backend_names());
}
