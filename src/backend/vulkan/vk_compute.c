/* Buffers, kernels and submission (vk_compute.h). */
#include "backend/vulkan/vk_compute.h"

#include "backend/vulkan/vk_spirv.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the embedded SPIR-V (generated from shaders/ by module.mk) */
#define HL_VK_SPV_DECL(name)                 \
    extern const uint32_t hl_vk_spv_##name[]; \
    extern const uint32_t hl_vk_spv_##name##_words;
HL_VK_KERNELS(HL_VK_SPV_DECL)
#undef HL_VK_SPV_DECL

static const struct {
    const char *name;
    const uint32_t *code;
    const uint32_t *words;
} spirv[HL_VK_K_COUNT] = {
#define HL_VK_SPV_ENTRY(name) {#name, hl_vk_spv_##name, &hl_vk_spv_##name##_words},
    HL_VK_KERNELS(HL_VK_SPV_ENTRY)
#undef HL_VK_SPV_ENTRY
};

/* the subgroup matrix products, by the pipeline they replace: the plain
 * build, the integer-dot one (quantized types; else NULL) and the values
 * per block (1: float weights) */
#define HL_VK_MV_DECL(t)                                   \
    extern const uint32_t hl_vk_spv_matvec_##t[];          \
    extern const uint32_t hl_vk_spv_matvec_##t##_words;    \
    extern const uint32_t hl_vk_spv_moe_matvec_##t[];      \
    extern const uint32_t hl_vk_spv_moe_matvec_##t##_words;
#define HL_VK_MV_DOT_DECL(t, unit)                            \
    HL_VK_MV_DECL(t)                                          \
    extern const uint32_t hl_vk_spv_matvec_dot_##t[];         \
    extern const uint32_t hl_vk_spv_matvec_dot_##t##_words;   \
    extern const uint32_t hl_vk_spv_moe_matvec_dot_##t[];     \
    extern const uint32_t hl_vk_spv_moe_matvec_dot_##t##_words;
HL_VK_MATVEC_FLOAT(HL_VK_MV_DECL)
HL_VK_MATVEC_QUANT(HL_VK_MV_DOT_DECL)
#undef HL_VK_MV_DECL
#undef HL_VK_MV_DOT_DECL

static const struct {
    hl_vk_kernel_id id;
    const uint32_t *code, *words, *dot_code, *dot_words;
    uint32_t unit; /* values per block; 1: float weights */
    int moe;
} matvec_spirv[] = {
#define HL_VK_MV_ENTRY(t)                                                                                         \
    {HL_VK_K_matmul_##t, hl_vk_spv_matvec_##t, &hl_vk_spv_matvec_##t##_words, NULL, NULL, 1, 0},                 \
        {HL_VK_K_moe_matmul_##t, hl_vk_spv_moe_matvec_##t, &hl_vk_spv_moe_matvec_##t##_words, NULL, NULL, 1, 1},
#define HL_VK_MV_DOT_ENTRY(t, unit)                                                                               \
    {HL_VK_K_matmul_##t, hl_vk_spv_matvec_##t, &hl_vk_spv_matvec_##t##_words, hl_vk_spv_matvec_dot_##t,          \
     &hl_vk_spv_matvec_dot_##t##_words, unit, 0},                                                                 \
        {HL_VK_K_moe_matmul_##t, hl_vk_spv_moe_matvec_##t, &hl_vk_spv_moe_matvec_##t##_words,                    \
         hl_vk_spv_moe_matvec_dot_##t, &hl_vk_spv_moe_matvec_dot_##t##_words, unit, 1},
    HL_VK_MATVEC_FLOAT(HL_VK_MV_ENTRY) HL_VK_MATVEC_QUANT(HL_VK_MV_DOT_ENTRY)
#undef HL_VK_MV_ENTRY
#undef HL_VK_MV_DOT_ENTRY
};

static int pool_grow(hl_vk_kernels *k, int n, hl_err *err);

static int find_memory(const hl_vk_device *d, uint32_t bits, VkMemoryPropertyFlags want) {
    for (uint32_t i = 0; i < d->mem.memoryTypeCount; i++)
        if ((bits & (1u << i)) && (d->mem.memoryTypes[i].propertyFlags & want) == want) return (int)i;
    return -1;
}

static int is_device_local(const hl_vk_device *d, uint32_t type) {
    return (d->mem.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) != 0;
}

/* host: host-visible coherent and mapped (device-local too where offered);
 * else device-local, mapped only when that memory is host-visible as well */
static int buffer_new(hl_vk_device *d, VkDeviceSize size, int host, hl_vk_buffer *out, hl_err *err) {
    memset(out, 0, sizeof *out);
    if (size == 0) size = 16;
    size = (size + 15) & ~(VkDeviceSize)15;
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size,
                              .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                       VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                              .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult vr = d->fn.vkCreateBuffer(d->dev, &bci, NULL, &out->buf);
    if (vr != VK_SUCCESS) return hl_err_set(err, HL_ENOMEM, "vkCreateBuffer(%llu bytes): %s", (unsigned long long)size, hl_vk_result_name(vr));
    VkMemoryRequirements req;
    d->fn.vkGetBufferMemoryRequirements(d->dev, out->buf, &req);
    const VkMemoryPropertyFlags vis = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    /* in order of preference; a discrete GPU without resizable BAR has only a
     * small host-visible device-local heap, so a big host-visible buffer that
     * does not fit there falls back to host memory the device reads over PCIe */
    const VkMemoryPropertyFlags want[2] = {host ? vis | VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT : VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                                           vis};
    vr = VK_ERROR_OUT_OF_DEVICE_MEMORY;
    int type = -1, tried = -1;
    for (int k = 0; k < 2 && !out->mem; k++) {
        type = find_memory(d, req.memoryTypeBits, want[k]);
        if (type < 0 || type == tried) continue;
        tried = type;
        VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                                    .memoryTypeIndex = (uint32_t)type};
        if ((vr = d->fn.vkAllocateMemory(d->dev, &mai, NULL, &out->mem)) != VK_SUCCESS) out->mem = VK_NULL_HANDLE;
    }
    if (!out->mem) {
        hl_vk_buffer_free(d, out);
        if (tried < 0) return hl_err_set(err, HL_ENOTSUP, "no %s memory type for a storage buffer", host ? "host-visible coherent" : "usable");
        return hl_err_set(err, HL_ENOMEM, "Vulkan buffer of %llu bytes: %s", (unsigned long long)size, hl_vk_result_name(vr));
    }
    int mappable = (d->mem.memoryTypes[type].propertyFlags & vis) == vis;
    if ((vr = d->fn.vkBindBufferMemory(d->dev, out->buf, out->mem, 0)) != VK_SUCCESS ||
        (mappable && (vr = d->fn.vkMapMemory(d->dev, out->mem, 0, VK_WHOLE_SIZE, 0, &out->map)) != VK_SUCCESS)) {
        hl_vk_buffer_free(d, out);
        return hl_err_set(err, HL_ENOMEM, "Vulkan buffer of %llu bytes: %s", (unsigned long long)size, hl_vk_result_name(vr));
    }
    out->size = size;
    if (is_device_local(d, (uint32_t)type)) out->device_bytes = req.size, __atomic_fetch_add(&d->allocated, req.size, __ATOMIC_RELAXED);
    return 0;
}

int hl_vk_buffer_new(hl_vk_device *d, VkDeviceSize size, hl_vk_buffer *out, hl_err *err) {
    return buffer_new(d, size, 1, out, err);
}

int hl_vk_buffer_new_device(hl_vk_device *d, VkDeviceSize size, hl_vk_buffer *out, hl_err *err) {
    return buffer_new(d, size, 0, out, err);
}

void hl_vk_buffer_free(hl_vk_device *d, hl_vk_buffer *b) {
    if (!b) return;
    if (b->map) d->fn.vkUnmapMemory(d->dev, b->mem);
    if (b->buf) d->fn.vkDestroyBuffer(d->dev, b->buf, NULL), __atomic_fetch_add(&d->freed, 1, __ATOMIC_RELAXED);
    if (b->mem) d->fn.vkFreeMemory(d->dev, b->mem, NULL);
    if (b->device_bytes) __atomic_fetch_sub(&d->allocated, b->device_bytes, __ATOMIC_RELAXED);
    memset(b, 0, sizeof *b);
}

/* One copy command on the device's command buffer, submitted and waited for. */
static int copy_now(hl_vk_device *d, const hl_vk_buffer *src, const hl_vk_buffer *dst, VkDeviceSize dst_off,
                    VkDeviceSize bytes, hl_err *err) {
    VkCommandBufferBeginInfo cbi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                    .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkResult vr;
    d->fn.vkResetCommandBuffer(d->cmd, 0);
    if ((vr = d->fn.vkBeginCommandBuffer(d->cmd, &cbi)) != VK_SUCCESS)
        return hl_err_set(err, HL_EIO, "vkBeginCommandBuffer: %s", hl_vk_result_name(vr));
    VkBufferCopy region = {.srcOffset = 0, .dstOffset = dst_off, .size = bytes};
    d->fn.vkCmdCopyBuffer(d->cmd, src->buf, dst->buf, 1, &region);
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT};
    d->fn.vkCmdPipelineBarrier(d->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0,
                               NULL, 0, NULL);
    if ((vr = d->fn.vkEndCommandBuffer(d->cmd)) != VK_SUCCESS)
        return hl_err_set(err, HL_EIO, "vkEndCommandBuffer: %s", hl_vk_result_name(vr));
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &d->cmd};
    d->fn.vkResetFences(d->dev, 1, &d->fence);
    if ((vr = d->fn.vkQueueSubmit(d->queue, 1, &si, d->fence)) != VK_SUCCESS)
        return hl_err_set(err, HL_EIO, "vkQueueSubmit: %s", hl_vk_result_name(vr));
    if ((vr = d->fn.vkWaitForFences(d->dev, 1, &d->fence, VK_TRUE, UINT64_MAX)) != VK_SUCCESS)
        return hl_err_set(err, HL_EIO, "waiting for the Vulkan queue: %s", hl_vk_result_name(vr));
    return 0;
}

int hl_vk_buffer_write(hl_vk_device *d, hl_vk_buffer *dst, const void *src, size_t bytes, hl_err *err) {
    if (bytes > dst->size) return hl_err_set(err, HL_EINVAL, "Vulkan write of %zu bytes into a buffer of %llu", bytes,
                                             (unsigned long long)dst->size);
    if (dst->map) {
        memcpy(dst->map, src, bytes);
        return 0;
    }
    /* device-only memory: through a host-visible staging buffer, a chunk at a time */
    const size_t chunk = bytes < d->staging_bytes ? bytes : d->staging_bytes;
    hl_vk_buffer st;
    int rc = hl_vk_buffer_new(d, chunk, &st, err);
    if (rc) return hl_err_prefix(err, "staging buffer: "), rc;
    pthread_mutex_lock(&d->submit_mu);
    for (size_t off = 0; off < bytes && !rc; off += chunk) {
        size_t n = bytes - off < chunk ? bytes - off : chunk;
        memcpy(st.map, (const char *)src + off, n);
        rc = copy_now(d, &st, dst, off, (n + 3) & ~(size_t)3, err);
    }
    pthread_mutex_unlock(&d->submit_mu);
    hl_vk_buffer_free(d, &st);
    return rc;
}

/* Whether the subgroup kernels can run on this device: the operations, and
 * a subgroup the 4 lanes of a K-quant block divide (a power of two). */
static int subgroup_ok(const hl_vk_device_info *info) {
    const uint32_t s = info->subgroup_size;
    return info->subgroup_arith && s >= 4 && s <= 128 && (s & (s - 1)) == 0;
}

/* a compute pipeline of the module `code` (`words` 32-bit words) */
static int make_pipeline(hl_vk_kernels *k, const char *name, const uint32_t *code, uint32_t words,
                         const VkSpecializationInfo *si, VkPipeline *out, hl_err *err) {
    hl_vk_device *d = k->d;
    VkShaderModuleCreateInfo sci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = (size_t)words * 4,
                                    .pCode = code};
    VkShaderModule mod;
    VkResult vr = d->fn.vkCreateShaderModule(d->dev, &sci, NULL, &mod);
    if (vr != VK_SUCCESS) return hl_err_set(err, HL_ENOTSUP, "Vulkan shader %s: %s", name, hl_vk_result_name(vr));
    VkComputePipelineCreateInfo cci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = mod, .pName = "main", .pSpecializationInfo = si},
        .layout = k->layout};
    vr = d->fn.vkCreateComputePipelines(d->dev, VK_NULL_HANDLE, 1, &cci, NULL, out);
    d->fn.vkDestroyShaderModule(d->dev, mod, NULL);
    if (vr != VK_SUCCESS) {
        *out = VK_NULL_HANDLE;
        return hl_err_set(err, HL_ENOTSUP, "Vulkan pipeline %s: %s", name, hl_vk_result_name(vr));
    }
    return 0;
}

int hl_vk_kernels_new(hl_vk_device *d, const hl_vk_kernel_opts *opts, hl_vk_kernels **out, hl_err *err) {
    *out = NULL;
    const hl_vk_device_info *info = &d->inst->devices[d->index];
    const hl_vk_matvec kind = opts ? opts->matvec : HL_VK_MATVEC_AUTO;
    const hl_vk_int_dot dot = opts ? opts->int_dot : HL_VK_INT_DOT_AUTO;
    const hl_vk_tiling tiling = opts ? opts->tiled : HL_VK_TILED_AUTO;
    if (kind == HL_VK_MATVEC_SUBGROUP && !subgroup_ok(info))
        return hl_err_set(err, HL_ENOTSUP,
                          "%s has no subgroup arithmetic for the subgroup matrix products (subgroup of %u%s); "
                          "use the shared-memory kernels (HYPERLAMA_VULKAN_MATVEC=shared or unset)",
                          info->name, info->subgroup_size, info->subgroup_arith ? "" : ", no arithmetic/shuffle ops in compute");
    const int subgroup = kind != HL_VK_MATVEC_SHARED && subgroup_ok(info);
    if (dot == HL_VK_INT_DOT_ON && (!info->int_dot || !subgroup))
        return hl_err_set(err, HL_ENOTSUP,
                          "%s: integer dot products need shaderIntegerDotProduct%s and the subgroup kernels%s "
                          "(HYPERLAMA_VULKAN_INT_DOT=off or auto)",
                          info->name, info->int_dot ? "" : " (the device has none)", subgroup ? "" : " (not in use)");
    if (tiling == HL_VK_TILED_ON && !subgroup)
        return hl_err_set(err, HL_ENOTSUP, "%s: the tiled matrix products are subgroup kernels, not in use here "
                          "(HYPERLAMA_VULKAN_TILED=off or auto)", info->name);
    const int want_tiled = subgroup && (tiling == HL_VK_TILED_ON ||
                                        (tiling == HL_VK_TILED_AUTO && info->type != VK_PHYSICAL_DEVICE_TYPE_CPU));
    hl_vk_kernels *k = calloc(1, sizeof *k);
    if (!k) return hl_err_set(err, HL_ENOMEM, "out of memory");
    k->d = d;
    k->subgroup = subgroup;
    k->int_dot = subgroup && info->int_dot && dot != HL_VK_INT_DOT_OFF;
    /* the subgroup kernels' work group: ROWS subgroups, at most 128
     * invocations (every device allows that many); the tiled pipelines'
     * shared tile: at most HL_VK_TILE_BYTES */
    const uint32_t lanes = info->subgroup_size, mv_rows = k->subgroup ? (lanes >= 32 ? 128 / lanes : 4) : 1;
    const uint32_t tile_bytes = info->max_shared_bytes < HL_VK_TILE_BYTES ? info->max_shared_bytes : HL_VK_TILE_BYTES;
    uint32_t spec_data[4] = {mv_rows * lanes, mv_rows, 1, 0};
    const VkSpecializationMapEntry spec_map[4] = {{.constantID = 0, .offset = 0, .size = 4},
                                                  {.constantID = 1, .offset = 4, .size = 4},
                                                  {.constantID = 2, .offset = 8, .size = 4},
                                                  {.constantID = 3, .offset = 12, .size = 4}};
    const VkSpecializationInfo spec = {.mapEntryCount = 4, .pMapEntries = spec_map, .dataSize = sizeof spec_data,
                                       .pData = spec_data};
    VkDescriptorSetLayoutBinding b[HL_VK_BINDINGS];
    for (int i = 0; i < HL_VK_BINDINGS; i++)
        b[i] = (VkDescriptorSetLayoutBinding){.binding = (uint32_t)i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                              .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                           .bindingCount = HL_VK_BINDINGS, .pBindings = b};
    VkPushConstantRange pc = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = HL_VK_PUSH_BYTES};
    VkResult vr;
    int rc = 0;
    if ((vr = d->fn.vkCreateDescriptorSetLayout(d->dev, &dci, NULL, &k->dsl)) != VK_SUCCESS) goto vk_fail;
    VkPipelineLayoutCreateInfo lci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                      .pSetLayouts = &k->dsl, .pushConstantRangeCount = 1, .pPushConstantRanges = &pc};
    if ((vr = d->fn.vkCreatePipelineLayout(d->dev, &lci, NULL, &k->layout)) != VK_SUCCESS) goto vk_fail;
    if ((rc = pool_grow(k, 64, err)) || (rc = hl_vk_buffer_new(d, 16, &k->dummy, err))) goto fail;
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .commandPool = d->cmd_pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                       .commandBufferCount = 1};
    pthread_mutex_lock(&d->submit_mu); /* the pool is shared with the device's other kernel sets */
    vr = d->fn.vkAllocateCommandBuffers(d->dev, &cai, &k->cmd);
    pthread_mutex_unlock(&d->submit_mu);
    if (vr != VK_SUCCESS) {
        k->cmd = VK_NULL_HANDLE;
        goto vk_fail;
    }
    for (int i = 0; i < HL_VK_K_COUNT; i++) {
        const uint32_t *code = spirv[i].code, *words = spirv[i].words;
        const VkSpecializationInfo *si = NULL;
        uint32_t unit = 0;
        int moe = 0;
        k->rows[i] = 1;
        for (size_t j = 0; k->subgroup && j < sizeof matvec_spirv / sizeof matvec_spirv[0]; j++)
            if (matvec_spirv[j].id == (hl_vk_kernel_id)i) {
                const int use_dot = k->int_dot && matvec_spirv[j].dot_code;
                code = use_dot ? matvec_spirv[j].dot_code : matvec_spirv[j].code;
                words = use_dot ? matvec_spirv[j].dot_words : matvec_spirv[j].words;
                si = &spec, k->rows[i] = mv_rows, unit = matvec_spirv[j].unit, moe = matvec_spirv[j].moe;
            }
        k->writes[i] = hl_vk_spirv_written_bindings(code, *words); /* the tiled pipeline's module too */
        spec_data[2] = 1, spec_data[3] = 0;
        if ((rc = make_pipeline(k, spirv[i].name, code, *words, si, &k->pipe[i], err))) goto fail;
        /* the tiled pipeline: where a tile holds more rows than a direct pass */
        if (want_tiled && unit > 1 && !moe) {
            const uint32_t parts = unit == 256 ? 4 : 1, pass_words = lanes / parts * (unit / 4);
            uint32_t tm = tile_bytes / 4 / pass_words;
            if (tm > HL_VK_TILE_ROWS) tm = HL_VK_TILE_ROWS;
            if (tm > HL_VK_DIRECT_ROWS) {
                spec_data[2] = tile_bytes / 4, spec_data[3] = 1;
                if ((rc = make_pipeline(k, spirv[i].name, code, *words, si, &k->tiled[i], err))) goto fail;
                k->tile_rows[i] = tm;
            }
        }
    }
    *out = k;
    return 0;
vk_fail:
    rc = hl_err_set(err, HL_ENOMEM, "Vulkan pipeline objects: %s", hl_vk_result_name(vr));
fail:
    hl_vk_kernels_free(k);
    return rc;
}

void hl_vk_kernels_describe(const hl_vk_kernels *k, char *buf, size_t n) {
    const hl_vk_device_info *info = &k->d->inst->devices[k->d->index];
    if (!k->subgroup) {
        snprintf(buf, n, "shared memory (64 per row)");
        return;
    }
    uint32_t lo = 0, hi = 0;
    for (int i = 0; i < HL_VK_K_COUNT; i++)
        if (k->tile_rows[i]) {
            if (!lo || k->tile_rows[i] < lo) lo = k->tile_rows[i];
            if (k->tile_rows[i] > hi) hi = k->tile_rows[i];
        }
    char tiles[64] = "";
    if (hi && lo == hi) snprintf(tiles, sizeof tiles, ", prefill tiles of %u rows", (unsigned)hi);
    else if (hi) snprintf(tiles, sizeof tiles, ", prefill tiles of %u-%u rows", (unsigned)lo, (unsigned)hi);
    snprintf(buf, n, "subgroup (%u lanes, %u rows per work group%s%s)", info->subgroup_size,
             (unsigned)k->rows[HL_VK_K_matmul_q4_k], k->int_dot ? ", int8 dot" : "", tiles);
}

void hl_vk_kernels_free(hl_vk_kernels *k) {
    if (!k) return;
    hl_vk_device *d = k->d;
    for (int i = 0; i < HL_VK_K_COUNT; i++) {
        if (k->pipe[i]) d->fn.vkDestroyPipeline(d->dev, k->pipe[i], NULL);
        if (k->tiled[i]) d->fn.vkDestroyPipeline(d->dev, k->tiled[i], NULL);
    }
    hl_vk_buffer_free(d, &k->dummy);
    if (k->cmd) {
        pthread_mutex_lock(&d->submit_mu);
        d->fn.vkFreeCommandBuffers(d->dev, d->cmd_pool, 1, &k->cmd);
        pthread_mutex_unlock(&d->submit_mu);
    }
    free(k->last);
    if (k->pool) d->fn.vkDestroyDescriptorPool(d->dev, k->pool, NULL);
    if (k->layout) d->fn.vkDestroyPipelineLayout(d->dev, k->layout, NULL);
    if (k->dsl) d->fn.vkDestroyDescriptorSetLayout(d->dev, k->dsl, NULL);
    free(k);
}

void hl_vk_groups_2d(const hl_vk_device *d, uint32_t count, uint32_t groups[3]) {
    uint32_t maxx = d->inst->devices[d->index].max_groups[0];
    if (maxx == 0) maxx = 65535;
    groups[0] = count < maxx ? count : maxx;
    groups[1] = groups[0] ? (count + groups[0] - 1) / groups[0] : 1;
    groups[2] = 1;
    if (groups[0] == 0) groups[0] = 1;
}

/* a descriptor pool for n sets (the old one, if any, destroyed) */
static int pool_grow(hl_vk_kernels *k, int n, hl_err *err) {
    hl_vk_device *d = k->d;
    int cap = k->pool_sets ? k->pool_sets : 64;
    while (cap < n) cap *= 2;
    if (k->pool) d->fn.vkDestroyDescriptorPool(d->dev, k->pool, NULL);
    k->pool = VK_NULL_HANDLE, k->pool_sets = 0;
    VkDescriptorPoolSize ps = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .descriptorCount = (uint32_t)(HL_VK_BINDINGS * cap)};
    VkDescriptorPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                      .maxSets = (uint32_t)cap, .poolSizeCount = 1, .pPoolSizes = &ps};
    VkResult vr = d->fn.vkCreateDescriptorPool(d->dev, &pci, NULL, &k->pool);
    if (vr != VK_SUCCESS) return hl_err_set(err, HL_ENOMEM, "Vulkan descriptor pool of %d sets: %s", cap, hl_vk_result_name(vr));
    k->pool_sets = cap;
    return 0;
}

/* ---- barriers where data depends ---- */

/* the bytes one binding of a dispatch touches */
typedef struct span {
    VkBuffer buf;
    VkDeviceSize lo, hi;
} span;

static int spans_overlap(const span *a, const span *b) { return a->buf == b->buf && a->lo < b->hi && b->lo < a->hi; }

static int overlaps_any(const span *s, const span *set, int n) {
    for (int i = 0; i < n; i++)
        if (spans_overlap(s, &set[i])) return 1;
    return 0;
}

/* the spans dispatch x reads and writes (the dummy buffer left out: what a
 * kernel writes there is never read) */
static void dispatch_spans(const hl_vk_kernels *k, const hl_vk_dispatch *x, span rd[HL_VK_BINDINGS], int *nr,
                           span wr[HL_VK_BINDINGS], int *nw) {
    *nr = *nw = 0;
    for (int j = 0; j < HL_VK_BINDINGS; j++) {
        const hl_vk_buffer *b = x->bufs[j];
        if (!b) continue;
        const VkDeviceSize lo = x->off[j], hi = x->range[j] ? x->off[j] + x->range[j] : b->size;
        const span s = {b->buf, lo, hi > lo ? hi : lo + 1};
        if (k->writes[x->kernel] & (1u << j)) wr[(*nw)++] = s;
        else rd[(*nr)++] = s;
    }
}

/* Records list into k->cmd: a host-to-compute barrier first, then each
 * dispatch, with a compute-to-compute barrier before it only when it reads
 * or writes what a dispatch since the last barrier wrote, or writes what one
 * read (read-after-write, write-after-write, write-after-read), and a
 * compute-to-host barrier last. */
static int record(hl_vk_kernels *k, const hl_vk_dispatch *list, int n, const VkDescriptorSet *sets, hl_err *err) {
    hl_vk_device *d = k->d;
    span *pend_r = malloc((size_t)n * HL_VK_BINDINGS * sizeof *pend_r);
    span *pend_w = malloc((size_t)n * HL_VK_BINDINGS * sizeof *pend_w);
    if (!pend_r || !pend_w) {
        free(pend_r), free(pend_w);
        return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    int npr = 0, npw = 0;
    VkCommandBufferBeginInfo cbi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    VkResult vr;
    d->fn.vkResetCommandBuffer(k->cmd, 0);
    if ((vr = d->fn.vkBeginCommandBuffer(k->cmd, &cbi)) != VK_SUCCESS) {
        free(pend_r), free(pend_w);
        return hl_err_set(err, HL_EIO, "vkBeginCommandBuffer: %s", hl_vk_result_name(vr));
    }
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_HOST_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
    d->fn.vkCmdPipelineBarrier(k->cmd, VK_PIPELINE_STAGE_HOST_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0,
                               NULL, 0, NULL);
    mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
    for (int i = 0; i < n; i++) {
        const hl_vk_dispatch *x = &list[i];
        span rd[HL_VK_BINDINGS], wr[HL_VK_BINDINGS];
        int nr, nw, dep = 0;
        dispatch_spans(k, x, rd, &nr, wr, &nw);
        for (int j = 0; j < nr && !dep; j++) dep = overlaps_any(&rd[j], pend_w, npw);
        for (int j = 0; j < nw && !dep; j++) dep = overlaps_any(&wr[j], pend_w, npw) || overlaps_any(&wr[j], pend_r, npr);
        if (dep) {
            d->fn.vkCmdPipelineBarrier(k->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0,
                                       1, &mb, 0, NULL, 0, NULL);
            k->stats.barriers++;
            npr = npw = 0;
        }
        for (int j = 0; j < nr; j++) pend_r[npr++] = rd[j];
        for (int j = 0; j < nw; j++) pend_w[npw++] = wr[j];
        d->fn.vkCmdBindPipeline(k->cmd, VK_PIPELINE_BIND_POINT_COMPUTE,
                                x->tiled && k->tiled[x->kernel] ? k->tiled[x->kernel] : k->pipe[x->kernel]);
        d->fn.vkCmdBindDescriptorSets(k->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, k->layout, 0, 1, &sets[i], 0, NULL);
        if (x->push_bytes)
            d->fn.vkCmdPushConstants(k->cmd, k->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, x->push_bytes, x->push);
        d->fn.vkCmdDispatch(k->cmd, x->groups[0] ? x->groups[0] : 1, x->groups[1] ? x->groups[1] : 1,
                            x->groups[2] ? x->groups[2] : 1);
    }
    free(pend_r), free(pend_w);
    mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    d->fn.vkCmdPipelineBarrier(k->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0,
                               NULL, 0, NULL);
    if ((vr = d->fn.vkEndCommandBuffer(k->cmd)) != VK_SUCCESS)
        return hl_err_set(err, HL_EIO, "vkEndCommandBuffer: %s", hl_vk_result_name(vr));
    k->stats.dispatches += (uint64_t)n;
    return 0;
}

/* descriptor sets for the list (the pool reset: the old recording's sets go) */
static int write_sets(hl_vk_kernels *k, const hl_vk_dispatch *list, int n, VkDescriptorSet *sets, hl_err *err) {
    hl_vk_device *d = k->d;
    int rc = n > k->pool_sets ? pool_grow(k, n, err) : 0;
    if (rc) return rc;
    VkResult vr = d->fn.vkResetDescriptorPool(d->dev, k->pool, 0);
    VkDescriptorSetLayout *layouts = malloc((size_t)n * sizeof *layouts);
    if (!layouts) return hl_err_set(err, HL_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) layouts[i] = k->dsl;
    VkDescriptorSetAllocateInfo dai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO, .descriptorPool = k->pool,
                                       .descriptorSetCount = (uint32_t)n, .pSetLayouts = layouts};
    if (vr == VK_SUCCESS) vr = d->fn.vkAllocateDescriptorSets(d->dev, &dai, sets);
    free(layouts);
    if (vr != VK_SUCCESS) return hl_err_set(err, HL_ENOMEM, "Vulkan descriptor sets: %s", hl_vk_result_name(vr));
    for (int i = 0; i < n; i++) {
        VkDescriptorBufferInfo bi[HL_VK_BINDINGS];
        VkWriteDescriptorSet w[HL_VK_BINDINGS];
        for (int j = 0; j < HL_VK_BINDINGS; j++) {
            const hl_vk_buffer *b = list[i].bufs[j] ? list[i].bufs[j] : &k->dummy;
            VkDeviceSize off = list[i].bufs[j] ? list[i].off[j] : 0, range = list[i].bufs[j] ? list[i].range[j] : 0;
            bi[j] = (VkDescriptorBufferInfo){.buffer = b->buf, .offset = off, .range = range ? range : VK_WHOLE_SIZE};
            w[j] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = sets[i],
                                          .dstBinding = (uint32_t)j, .descriptorCount = 1,
                                          .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .pBufferInfo = &bi[j]};
        }
        d->fn.vkUpdateDescriptorSets(d->dev, HL_VK_BINDINGS, w, 0, NULL);
    }
    return 0;
}

/* the list is the one k->cmd holds, and nothing it names was freed since */
static int same_as_recorded(const hl_vk_kernels *k, const hl_vk_dispatch *list, int n) {
    return k->recorded && n == k->n_last && __atomic_load_n(&k->d->freed, __ATOMIC_RELAXED) == k->last_freed &&
           memcmp(list, k->last, (size_t)n * sizeof *list) == 0;
}

static int run_locked(hl_vk_kernels *k, const hl_vk_dispatch *list, int n, hl_err *err) {
    hl_vk_device *d = k->d;
    if (n <= 0) return 0;
    VkResult vr;
    const int reuse = same_as_recorded(k, list, n);
    if (!reuse) {
        k->recorded = 0;
        if (n > k->cap_last) {
            hl_vk_dispatch *l = realloc(k->last, (size_t)n * sizeof *l);
            if (!l) return hl_err_set(err, HL_ENOMEM, "out of memory");
            k->last = l, k->cap_last = n;
        }
        VkDescriptorSet *sets = malloc((size_t)n * sizeof *sets);
        if (!sets) return hl_err_set(err, HL_ENOMEM, "out of memory");
        int rc = write_sets(k, list, n, sets, err);
        if (!rc) rc = record(k, list, n, sets, err);
        free(sets);
        if (rc) return rc;
        memcpy(k->last, list, (size_t)n * sizeof *list);
        k->n_last = n, k->last_freed = __atomic_load_n(&d->freed, __ATOMIC_RELAXED), k->recorded = 1;
    }
    k->stats.runs++;
    if (reuse) k->stats.reused++;
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &k->cmd};
    d->fn.vkResetFences(d->dev, 1, &d->fence);
    if ((vr = d->fn.vkQueueSubmit(d->queue, 1, &si, d->fence)) != VK_SUCCESS) {
        k->recorded = 0;
        return hl_err_set(err, HL_EIO, "vkQueueSubmit: %s", hl_vk_result_name(vr));
    }
    if ((vr = d->fn.vkWaitForFences(d->dev, 1, &d->fence, VK_TRUE, UINT64_MAX)) != VK_SUCCESS) {
        k->recorded = 0;
        return hl_err_set(err, HL_EIO, "waiting for the Vulkan queue: %s", hl_vk_result_name(vr));
    }
    return 0;
}

int hl_vk_run(hl_vk_kernels *k, const hl_vk_dispatch *list, int n, hl_err *err) {
    pthread_mutex_lock(&k->d->submit_mu);
    int rc = run_locked(k, list, n, err);
    pthread_mutex_unlock(&k->d->submit_mu);
    return rc;
}
