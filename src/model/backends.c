/* The backend registry: the one place that maps a backend's name to its
 * constructor. Everything above model/ names a backend at most (a setting)
 * and holds it as an opaque hl_backend. */
#include "model/model.h"

#include "backend/ref/ref.h"
#include "backend/vulkan/vulkan.h"

#include <stdio.h>
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

static int open_cpu(hl_backend **out, hl_pool *pool, hl_err *err) {
    if (!pool) return hl_err_set(err, HL_EINVAL, "the CPU backend needs a thread pool");
    return hl_backend_cpu_new(out, &(hl_cpu_backend_params){.pool = pool, .threads = HL_THREADS_AUTO}, err);
}

int hl_backend_open_choice(hl_backend **out, const hl_backend_choice *c, hl_pool *pool, char *note, size_t note_cap,
                           hl_err *err) {
    *out = NULL;
    if (note && note_cap) *note = 0;
    const char *name = c && c->name ? c->name : "auto";
    int dev = c ? c->vulkan_device : -1;
    hl_vulkan_backend_params vp = {.device = dev, .allow_cpu = dev >= 0, /* an index is taken as given */
                                   .memory_fraction = c ? c->gpu_memory_fraction : 0};
    if (vp.memory_fraction <= 0 || vp.memory_fraction > 1) vp.memory_fraction = HL_GPU_MEMORY_FRACTION_DEFAULT;
    if (!strcmp(name, "cpu")) return open_cpu(out, pool, err);
    if (!strcmp(name, "ref")) return hl_backend_ref_new(out, err);
    /* auto: the GPU "vulkan" would take, never a CPU implementation such as
     * lavapipe (slower than the CPU backend) unless a device index says so */
    if (!strcmp(name, "auto")) {
        hl_err why = {0};
        if (!hl_backend_vulkan_new(out, &vp, &why)) return 0;
        if (note && note_cap) snprintf(note, note_cap, "no GPU: %s; running on the CPU", why.msg);
        return open_cpu(out, pool, err);
    }
    /* vulkan: the GPU with the most memory (or the device the setting names);
     * vulkan:N: device N of the loader's list, whatever it is (lavapipe too) */
    if (!strcmp(name, "vulkan")) return hl_backend_vulkan_new(out, &vp, err);
    if (vulkan_index(name) >= 0) {
        vp.device = vulkan_index(name), vp.allow_cpu = 1;
        return hl_backend_vulkan_new(out, &vp, err);
    }
    return hl_err_set(err, HL_EINVAL, "unknown backend '%s' (choose one of: %s)", name, hl_backend_names());
}

int hl_backend_open(hl_backend **out, const char *name, hl_pool *pool, hl_err *err) {
    return hl_backend_open_choice(out, &(hl_backend_choice){.name = name, .vulkan_device = -1}, pool, NULL, 0, err);
}

int hl_backend_is_gpu(const hl_backend *be) {
    if (!be) return 0;
    hl_backend_mem m = {0};
    be->ops->memory((hl_backend *)be, NULL, &m);
    return m.where && strcmp(m.where, "host") != 0;
}

const char *hl_backend_description(const hl_backend *be) {
    return be && !strcmp(hl_backend_name(be), "vulkan") ? hl_backend_vulkan_device(be) : "";
}
