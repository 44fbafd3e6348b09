/* The shared "does not fit" wording (memfit.h). */
#include "base/memfit.h"

#include <stdio.h>
#include <string.h>

void hl_mem_bytes(int64_t b, char *out, size_t cap) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (b < 1024) {
        snprintf(out, cap, "%lld B", (long long)b);
        return;
    }
    double v = (double)b / 1024;
    int u = 0;
    while (v >= 1024 && u < 3) {
        v /= 1024;
        u++;
    }
    snprintf(out, cap, "%.1f %s", v, units[u]);
}

void hl_mem_need_text(const hl_mem_need *n, char *out, size_t cap) {
    char nb[32], part[32], parts[224] = "";
    size_t len = 0;
    const struct { int64_t bytes; const char *what; } p[3] = {
        {n->weights, "of weights"}, {n->kv, "of KV cache"}, {n->overhead, "of buffers"}};
    for (int i = 0; i < 3; i++) {
        if (p[i].bytes <= 0) continue;
        hl_mem_bytes(p[i].bytes, part, sizeof part);
        len += (size_t)snprintf(parts + len, len < sizeof parts ? sizeof parts - len : 0, "%s%s %s", len ? " + " : "",
                                part, p[i].what);
        if (i == 1 && n->ctx > 0 && len < sizeof parts)
            len += (size_t)snprintf(parts + len, sizeof parts - len, " for a %lld-token context", (long long)n->ctx);
        if (len >= sizeof parts) len = sizeof parts - 1;
    }
    hl_mem_bytes(n->need, nb, sizeof nb);
    snprintf(out, cap, "%s (%s)", nb, parts);
}

int hl_mem_refuse(hl_err *err, const char *memory, const hl_mem_need *n, const char *avail_note, const char *try_text) {
    char need[320], ab[32];
    hl_mem_need_text(n, need, sizeof need);
    hl_mem_bytes(n->avail, ab, sizeof ab);
    return hl_err_set(err, HL_ENOMEM, "model requires more %s (%s) than is available (%s%s%s). Try %s", memory, need, ab,
                      avail_note ? ", " : "", avail_note ? avail_note : "", try_text);
}
