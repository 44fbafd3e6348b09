/* What the model tests share (header-only, like backend/ref/ops_harness.h,
 * since each test file is its own binary):
 *
 * - hl_test_ref_greedy: llama.cpp's greedy token ids for one of the stories
 *   files, read from the reference file under ../shared/models (the
 *   independent reference: ids produced by llama.cpp, not by us).
 * - hl_test_open_vulkan: the Vulkan backend on HYPERLAMA_VULKAN_DEVICE
 *   (default 0, so lavapipe serves in CI). With no device it returns NULL:
 *   skipped with the reason when `skip` is set, noted otherwise, and failed
 *   when HYPERLAMA_TEST_REQUIRE_VULKAN is set (scripts/test.sh sets it). */
#ifndef HL_TEST_MODEL_HARNESS_H
#define HL_TEST_MODEL_HARNESS_H

#include "harness.h"

#include "backend/backend.h"
#include "backend/vulkan/vulkan.h"
#include "base/err.h"
#include "base/file.h"
#include "model/model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Reads "greedy ids: [...]" of one file's section of the reference file;
 * the number of ids, or -1 when the file or the section is missing. */
static inline int hl_test_ref_greedy(const char *file, int32_t *ids, int max) {
    char *txt = NULL;
    size_t len = 0;
    hl_err err;
    if (hl_read_file(hl_test_shared("models/stories260K-llamacpp-reference.txt"), 1 << 20, &txt, &len, &err)) return -1;
    char hdr[128];
    snprintf(hdr, sizeof hdr, "## %s ", file);
    char *s = strstr(txt, hdr);
    int n = -1;
    if (s && (s = strstr(s, "greedy ids: ["))) {
        s += strlen("greedy ids: [");
        n = 0;
        while (n < max && *s && *s != ']') {
            ids[n++] = (int32_t)strtol(s, &s, 10);
            if (*s == ',') s++;
        }
    }
    free(txt);
    return n;
}

static inline int hl_test_vulkan_required(void) {
    const char *r = getenv("HYPERLAMA_TEST_REQUIRE_VULKAN");
    return r && *r && strcmp(r, "0") != 0;
}

static inline hl_backend *hl_test_open_vulkan(int skip) {
    const char *dev = getenv("HYPERLAMA_VULKAN_DEVICE");
    char name[64];
    snprintf(name, sizeof name, "vulkan:%s", dev && *dev ? dev : "0");
    hl_backend *be = NULL;
    hl_err err = {0};
    int rc = hl_backend_open(&be, name, NULL, &err);
    if (rc == HL_ENOTSUP && !hl_test_vulkan_required()) {
        if (skip)
            hl_test_skip(err.msg);
        else
            printf("    no Vulkan device (%s): the Vulkan half is not run\n", err.msg);
        return NULL;
    }
    if (rc) {
        hl_test_fail(__FILE__, __LINE__, "%s: %s", name, err.msg);
        return NULL;
    }
    static int said;
    if (!said++) printf("    vulkan device: %s\n", hl_backend_vulkan_device(be));
    return be;
}

#endif
