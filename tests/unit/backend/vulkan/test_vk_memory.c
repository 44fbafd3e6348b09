/* Vulkan device memory: the choice of device, uploads into device-local
 * memory, and the free-memory budget.
 *
 * 1. hl_vk_pick over a made-up device list: auto takes the discrete or
 *    integrated GPU with the most device-local memory, never a CPU
 *    implementation (unless allowed), never an unusable device; an index is
 *    taken as given.
 * 2. The staged upload (what a discrete GPU's device-only memory gets):
 *    lavapipe's memory is all host-visible, so the test hides the buffer's
 *    mapping to force the staging path, with a chunk smaller than the data
 *    so several copies run, and reads the bytes back through the mapping:
 *    they must equal the source exactly.
 * 3. The budget: hl_vk_device_free_bytes drops by at least what a buffer
 *    takes while it lives (by the device's own count, or the driver's
 *    VK_EXT_memory_budget figure, which counts other users too, so only a
 *    lower bound on the drop is checked for it). */
#include "vk_harness.h"

#include "backend/vulkan/vk_compute.h"

#include <stdlib.h>
#include <string.h>

static hl_vk_device_info dev(const char *name, VkPhysicalDeviceType t, uint64_t gib, int usable) {
    hl_vk_device_info d = {.type = t, .device_local_bytes = gib << 30, .usable = usable};
    snprintf(d.name, sizeof d.name, "%s", name);
    return d;
}

TEST(vk_pick_takes_the_gpu_with_the_most_memory) {
    hl_vk_device_info list[] = {
        dev("llvmpipe", VK_PHYSICAL_DEVICE_TYPE_CPU, 64, 1),
        dev("igpu", VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU, 8, 1),
        dev("small", VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU, 12, 1),
        dev("old", VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU, 80, 0), /* Vulkan 1.1: not usable */
        dev("big", VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU, 24, 1),
    };
    hl_vk_instance vi = {.n_devices = 5, .devices = list};
    hl_err err = {0};
    CHECK_EQ(hl_vk_pick(&vi, -1, 0, &err), 4);     /* the 24 GiB one: not the CPU's 64, not the unusable 80 */
    CHECK_EQ(hl_vk_pick(&vi, -1, 1, &err), 0);     /* CPU devices allowed: the most memory wins */
    CHECK_EQ(hl_vk_pick(&vi, 1, 0, &err), 1);      /* an index is taken as given */
    CHECK_EQ(hl_vk_pick(&vi, 0, 0, &err), 0);      /* even a CPU device */
    CHECK(hl_vk_pick(&vi, 3, 0, &err) < 0 && strstr(err.msg, "cannot run the kernels"));
    CHECK(hl_vk_pick(&vi, 9, 0, &err) < 0 && strstr(err.msg, "does not exist"));
    vi.n_devices = 1; /* only lavapipe: auto finds no GPU and says what there is */
    CHECK(hl_vk_pick(&vi, -1, 0, &err) < 0 && strstr(err.msg, "no usable Vulkan GPU") && strstr(err.msg, "llvmpipe"));
}

TEST(vk_staged_upload_round_trips) {
    hl_vk_instance *vi;
    hl_vk_device *d;
    hl_err err = {0};
    if (vk_test_open_device(&vi, &d)) return;
    const size_t n = (3u << 20) + 12; /* three chunks and a tail */
    d->staging_bytes = 1u << 20;
    uint8_t *src = malloc(n);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < n; i++) x = x * 6364136223846793005ull + 1442695040888963407ull, src[i] = (uint8_t)(x >> 56);
    uint64_t free0 = hl_vk_device_free_bytes(d);
    hl_vk_buffer b;
    CHECK_EQ(hl_vk_buffer_new_device(d, n, &b, &err), 0);
    const hl_vk_device_info *info = &vi->devices[d->index];
    printf("    %s: free %llu MiB, memory budget %s, %s\n", info->name, (unsigned long long)(free0 >> 20),
           info->memory_budget ? "from the driver" : "counted", info->uma ? "shared heap (no staging needed)" : "device-only memory");
    uint64_t free1 = hl_vk_device_free_bytes(d);
    if (!info->memory_budget) CHECK(free0 - free1 >= n);
    void *map = b.map;
    b.map = NULL; /* as device-only memory: the write must stage */
    CHECK_EQ(hl_vk_buffer_write(d, &b, src, n, &err), 0);
    b.map = map;
    if (map) CHECK(memcmp(map, src, n) == 0);
    CHECK(hl_vk_buffer_write(d, &b, src, (size_t)b.size + 1, &err) == HL_EINVAL);
    hl_vk_buffer_free(d, &b);
    if (!info->memory_budget) CHECK_EQ(hl_vk_device_free_bytes(d), free0);
    free(src);
    hl_vk_device_close(d);
    hl_vk_instance_close(vi);
}
