/* The device the kernel-level Vulkan tests run on: HYPERLAMA_VULKAN_DEVICE,
 * else the first usable one, CPU implementations (lavapipe) allowed. Without
 * a loader or device the test skips, saying why, unless
 * HYPERLAMA_TEST_REQUIRE_VULKAN is set (scripts/test.sh sets it), when it
 * fails. */
#ifndef HL_TEST_VK_HARNESS_H
#define HL_TEST_VK_HARNESS_H

#include "harness.h"

#include "backend/vulkan/vk_device.h"

#include <stdlib.h>
#include <string.h>

/* 0: *vi and *d open (the caller closes them); else nothing is left open
 * and the test has been skipped or failed */
static inline int vk_test_open_device(hl_vk_instance **vi, hl_vk_device **d) {
    *vi = NULL, *d = NULL;
    hl_err err = {0};
    int rc = hl_vk_instance_open(vi, &err);
    const char *env = getenv("HYPERLAMA_VULKAN_DEVICE");
    const int idx = rc ? -1 : hl_vk_pick(*vi, env && *env ? atoi(env) : -1, 1, &err);
    if (!rc && idx < 0) rc = HL_ENOTSUP;
    if (!rc) rc = hl_vk_device_open(*vi, idx, d, &err);
    if (!rc) return 0;
    const char *req = getenv("HYPERLAMA_TEST_REQUIRE_VULKAN");
    if (rc == HL_ENOTSUP && !(req && *req && strcmp(req, "0") != 0)) hl_test_skip(err.msg);
    else hl_test_fail(__FILE__, __LINE__, "Vulkan device: %s", err.msg);
    hl_vk_instance_close(*vi);
    *vi = NULL, *d = NULL;
    return -1;
}

#endif
