/* Vulkan instances and devices (vk_device.h): the loader opened with
 * dlopen, the physical devices described once at instance creation, and a
 * logical device with one compute queue. */
#include "backend/vulkan/vk_device.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *hl_vk_result_name(VkResult r) {
    switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_INCOMPLETE: return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    default: return "VkResult error";
    }
}

const char *hl_vk_type_name(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
    }
}

static int has_ext(const VkExtensionProperties *e, uint32_t n, const char *name) {
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(e[i].extensionName, name)) return 1;
    return 0;
}

/* What the kernels need to know of one physical device. */
static void describe_phys(const hl_vk_fns *fn, VkPhysicalDevice p, hl_vk_device_info *d) {
    memset(d, 0, sizeof *d);
    VkPhysicalDeviceProperties props;
    fn->vkGetPhysicalDeviceProperties(p, &props);
    snprintf(d->name, sizeof d->name, "%s", props.deviceName);
    d->type = props.deviceType;
    d->api_version = props.apiVersion;
    d->max_shared_bytes = props.limits.maxComputeSharedMemorySize;
    for (int i = 0; i < 3; i++) d->max_groups[i] = props.limits.maxComputeWorkGroupCount[i];
    if (d->api_version < VK_API_VERSION_1_2) return; /* not usable: the features below are 1.2 core */

    VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceSubgroupProperties sub = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES, .pNext = &drv};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sub};
    fn->vkGetPhysicalDeviceProperties2(p, &p2);
    snprintf(d->driver, sizeof d->driver, "%s", drv.driverName);
    d->subgroup_size = sub.subgroupSize;
    const VkSubgroupFeatureFlags ops = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT |
                                       VK_SUBGROUP_FEATURE_SHUFFLE_BIT;
    d->subgroup_arith = (sub.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) && (sub.supportedOperations & ops) == ops;

    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES, .pNext = &f11};
    VkPhysicalDeviceShaderIntegerDotProductFeatures fdot = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES, .pNext = &f12};
    uint32_t n_ext = 0;
    fn->vkEnumerateDeviceExtensionProperties(p, NULL, &n_ext, NULL);
    VkExtensionProperties *ext = calloc(n_ext ? n_ext : 1, sizeof *ext);
    if (ext && fn->vkEnumerateDeviceExtensionProperties(p, NULL, &n_ext, ext) != VK_SUCCESS) n_ext = 0;
    int dot_ext = ext && (d->api_version >= VK_API_VERSION_1_3 || has_ext(ext, n_ext, "VK_KHR_shader_integer_dot_product"));
    d->coopmat = ext && (has_ext(ext, n_ext, "VK_KHR_cooperative_matrix") || has_ext(ext, n_ext, "VK_NV_cooperative_matrix"));
    d->memory_budget = ext && has_ext(ext, n_ext, "VK_EXT_memory_budget");
    free(ext);
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = dot_ext ? (void *)&fdot : (void *)&f12};
    fn->vkGetPhysicalDeviceFeatures2(p, &f2);
    d->storage8 = f12.storageBuffer8BitAccess;
    d->storage16 = f11.storageBuffer16BitAccess;
    d->fp16 = f12.shaderFloat16;
    d->int8 = f12.shaderInt8;
    d->int_dot = dot_ext && fdot.shaderIntegerDotProduct;

    VkPhysicalDeviceMemoryProperties mem;
    fn->vkGetPhysicalDeviceMemoryProperties(p, &mem);
    for (uint32_t i = 0; i < mem.memoryHeapCount; i++)
        if ((mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) && mem.memoryHeaps[i].size > d->device_local_bytes)
            d->device_local_bytes = mem.memoryHeaps[i].size;
    d->uma = 1;
    for (uint32_t i = 0; i < mem.memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = mem.memoryTypes[i].propertyFlags;
        if ((f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) && !(f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)) d->uma = 0;
    }

    uint32_t nq = 0;
    fn->vkGetPhysicalDeviceQueueFamilyProperties(p, &nq, NULL);
    VkQueueFamilyProperties *q = calloc(nq ? nq : 1, sizeof *q);
    int found = 0;
    if (q) {
        fn->vkGetPhysicalDeviceQueueFamilyProperties(p, &nq, q);
        /* a compute family without graphics first (a dedicated compute queue), else any with compute */
        for (int pass = 0; pass < 2 && !found; pass++)
            for (uint32_t i = 0; i < nq && !found; i++)
                if ((q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && (pass || !(q[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)))
                    d->queue_family = i, found = 1;
        free(q);
    }
    d->usable = found && d->storage8 && d->storage16;
}

void hl_vk_describe(const hl_vk_device_info *d, char *buf, size_t n) {
    snprintf(buf, n, "%s (%s, Vulkan %u.%u.%u, %.1f GiB, subgroup %u%s%s%s%s%s)%s", d->name, hl_vk_type_name(d->type),
             VK_API_VERSION_MAJOR(d->api_version), VK_API_VERSION_MINOR(d->api_version),
             VK_API_VERSION_PATCH(d->api_version), (double)d->device_local_bytes / (1024.0 * 1024.0 * 1024.0),
             d->subgroup_size, d->subgroup_arith ? " with arithmetic" : "", d->fp16 ? ", fp16" : "", d->int8 ? ", int8" : "", d->int_dot ? ", int8 dot" : "",
             d->coopmat ? ", cooperative matrix" : "", d->usable ? "" : " [not usable: needs Vulkan 1.2 with 8/16-bit storage]");
}

int hl_vk_instance_open(hl_vk_instance **out, hl_err *err) {
    *out = NULL;
    hl_vk_instance *vi = calloc(1, sizeof *vi);
    if (!vi) return hl_err_set(err, HL_ENOMEM, "out of memory");
    vi->lib = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!vi->lib) {
        free(vi);
        return hl_err_set(err, HL_ENOTSUP, "no Vulkan loader (libvulkan.so.1 not found; Debian: apt install libvulkan1 and a driver)");
    }
    *(void **)&vi->fn.vkGetInstanceProcAddr = dlsym(vi->lib, "vkGetInstanceProcAddr");
    int rc = 0;
    if (!vi->fn.vkGetInstanceProcAddr) {
        rc = hl_err_set(err, HL_ENOTSUP, "libvulkan.so.1 has no vkGetInstanceProcAddr");
        goto fail;
    }
#define LOAD_GLOBAL(name) vi->fn.name = (PFN_##name)vi->fn.vkGetInstanceProcAddr(NULL, #name);
    VK_GLOBAL_FNS(LOAD_GLOBAL)
#undef LOAD_GLOBAL
    if (!vi->fn.vkCreateInstance || !vi->fn.vkEnumerateInstanceVersion) {
        rc = hl_err_set(err, HL_ENOTSUP, "the Vulkan loader is older than 1.1");
        goto fail;
    }
    uint32_t ver = 0;
    vi->fn.vkEnumerateInstanceVersion(&ver);
    if (ver < VK_API_VERSION_1_2) {
        rc = hl_err_set(err, HL_ENOTSUP, "the Vulkan loader speaks %u.%u; 1.2 is needed", VK_API_VERSION_MAJOR(ver),
                        VK_API_VERSION_MINOR(ver));
        goto fail;
    }
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "hyperlama",
                             .pEngineName = "hyperlama", .apiVersion = VK_API_VERSION_1_3};
    /* MoltenVK lists its devices only to instances that enumerate portability drivers */
    uint32_t n_iext = 0;
    vi->fn.vkEnumerateInstanceExtensionProperties(NULL, &n_iext, NULL);
    VkExtensionProperties *iext = calloc(n_iext ? n_iext : 1, sizeof *iext);
    int portability = iext && vi->fn.vkEnumerateInstanceExtensionProperties(NULL, &n_iext, iext) == VK_SUCCESS &&
                      has_ext(iext, n_iext, "VK_KHR_portability_enumeration");
    free(iext);
    const char *exts[] = {"VK_KHR_portability_enumeration"};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app,
                               .enabledExtensionCount = portability ? 1 : 0, .ppEnabledExtensionNames = exts,
                               .flags = portability ? 0x00000001 /* ENUMERATE_PORTABILITY_BIT_KHR */ : 0};
    VkResult vr = vi->fn.vkCreateInstance(&ci, NULL, &vi->inst);
    if (vr != VK_SUCCESS) {
        rc = hl_err_set(err, HL_ENOTSUP, "vkCreateInstance failed: %s", hl_vk_result_name(vr));
        goto fail;
    }
#define LOAD_INSTANCE(name) vi->fn.name = (PFN_##name)vi->fn.vkGetInstanceProcAddr(vi->inst, #name);
    VK_INSTANCE_FNS(LOAD_INSTANCE)
#undef LOAD_INSTANCE
#define CHECK_INSTANCE(name)                                                                        \
    if (!vi->fn.name) {                                                                             \
        rc = hl_err_set(err, HL_ENOTSUP, "the Vulkan loader lacks %s", #name);                     \
        goto fail;                                                                                  \
    }
    VK_INSTANCE_FNS(CHECK_INSTANCE)
#undef CHECK_INSTANCE
    vr = vi->fn.vkEnumeratePhysicalDevices(vi->inst, &vi->n_devices, NULL);
    if (vr != VK_SUCCESS || vi->n_devices == 0) {
        rc = hl_err_set(err, HL_ENOTSUP, "no Vulkan device (install a driver; for tests, Debian's mesa-vulkan-drivers has lavapipe)");
        goto fail;
    }
    vi->phys = calloc(vi->n_devices, sizeof *vi->phys);
    vi->devices = calloc(vi->n_devices, sizeof *vi->devices);
    if (!vi->phys || !vi->devices) {
        rc = hl_err_set(err, HL_ENOMEM, "out of memory");
        goto fail;
    }
    vr = vi->fn.vkEnumeratePhysicalDevices(vi->inst, &vi->n_devices, vi->phys);
    if (vr != VK_SUCCESS && vr != VK_INCOMPLETE) {
        rc = hl_err_set(err, HL_ENOTSUP, "vkEnumeratePhysicalDevices failed: %s", hl_vk_result_name(vr));
        goto fail;
    }
    for (uint32_t i = 0; i < vi->n_devices; i++) describe_phys(&vi->fn, vi->phys[i], &vi->devices[i]);
    *out = vi;
    return 0;
fail:
    hl_vk_instance_close(vi);
    return rc;
}

void hl_vk_instance_close(hl_vk_instance *vi) {
    if (!vi) return;
    if (vi->inst && vi->fn.vkDestroyInstance) vi->fn.vkDestroyInstance(vi->inst, NULL);
    if (vi->lib) dlclose(vi->lib);
    free(vi->phys);
    free(vi->devices);
    free(vi);
}

int hl_vk_pick(const hl_vk_instance *vi, int requested, int allow_cpu, hl_err *err) {
    char desc[512];
    if (requested >= 0) {
        if ((uint32_t)requested >= vi->n_devices)
            return hl_err_set(err, HL_EINVAL, "Vulkan device %d does not exist (there are %u)", requested, vi->n_devices), -1;
        if (!vi->devices[requested].usable) {
            hl_vk_describe(&vi->devices[requested], desc, sizeof desc);
            return hl_err_set(err, HL_ENOTSUP, "Vulkan device %d cannot run the kernels: %s", requested, desc), -1;
        }
        return requested;
    }
    int best = -1;
    for (uint32_t i = 0; i < vi->n_devices; i++) {
        const hl_vk_device_info *d = &vi->devices[i];
        if (!d->usable || (d->type == VK_PHYSICAL_DEVICE_TYPE_CPU && !allow_cpu)) continue;
        if (best < 0 || d->device_local_bytes > vi->devices[best].device_local_bytes) best = (int)i;
    }
    if (best < 0 && vi->n_devices == 0) return hl_err_set(err, HL_ENOTSUP, "no Vulkan devices (the loader lists none)"), -1;
    if (best < 0) {
        hl_vk_describe(&vi->devices[0], desc, sizeof desc);
        return hl_err_set(err, HL_ENOTSUP, "no usable Vulkan GPU (%u device%s; the first is %s)", vi->n_devices,
                          vi->n_devices == 1 ? "" : "s", desc), -1;
    }
    return best;
}

int hl_vk_device_open(hl_vk_instance *vi, int index, hl_vk_device **out, hl_err *err) {
    *out = NULL;
    if (index < 0 || (uint32_t)index >= vi->n_devices || !vi->devices[index].usable)
        return hl_err_set(err, HL_EINVAL, "Vulkan device %d is not usable", index);
    const hl_vk_device_info *info = &vi->devices[index];
    hl_vk_device *d = calloc(1, sizeof *d);
    if (!d) return hl_err_set(err, HL_ENOMEM, "out of memory");
    d->inst = vi;
    d->index = index;
    d->fn = vi->fn;
    d->phys = vi->phys[index];
    d->fn.vkGetPhysicalDeviceMemoryProperties(d->phys, &d->mem);
    pthread_mutex_init(&d->submit_mu, NULL);
    d->staging_bytes = 64u << 20;

    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                   .queueFamilyIndex = info->queue_family, .queueCount = 1, .pQueuePriorities = &prio};
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                            .storageBuffer16BitAccess = VK_TRUE};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES, .pNext = &f11,
                                            .storageBuffer8BitAccess = VK_TRUE,
                                            .shaderFloat16 = info->fp16 ? VK_TRUE : VK_FALSE,
                                            .shaderInt8 = info->int8 ? VK_TRUE : VK_FALSE};
    /* integer dot products (the matvec_dot_* kernels): core in 1.3, else the KHR extension */
    VkPhysicalDeviceShaderIntegerDotProductFeatures fdot = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES, .pNext = &f12,
        .shaderIntegerDotProduct = VK_TRUE};
    const char *dot_ext[] = {"VK_KHR_shader_integer_dot_product"};
    const int dot_by_ext = info->int_dot && info->api_version < VK_API_VERSION_1_3;
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = info->int_dot ? (void *)&fdot : (void *)&f12,
                              .queueCreateInfoCount = 1, .pQueueCreateInfos = &qci,
                              .enabledExtensionCount = dot_by_ext ? 1 : 0, .ppEnabledExtensionNames = dot_ext};
    VkResult vr = d->fn.vkCreateDevice(d->phys, &dci, NULL, &d->dev);
    int rc = 0;
    if (vr != VK_SUCCESS) {
        rc = hl_err_set(err, HL_ENOTSUP, "vkCreateDevice(%s) failed: %s", info->name, hl_vk_result_name(vr));
        goto fail;
    }
#define LOAD_DEVICE(name) d->fn.name = (PFN_##name)d->fn.vkGetDeviceProcAddr(d->dev, #name);
    VK_DEVICE_FNS(LOAD_DEVICE)
#undef LOAD_DEVICE
#define CHECK_DEVICE(fn_name)                                                                       \
    if (!d->fn.fn_name) {                                                                           \
        rc = hl_err_set(err, HL_ENOTSUP, "the Vulkan driver of %s lacks %s", info->name, #fn_name); \
        goto fail;                                                                                  \
    }
    VK_DEVICE_FNS(CHECK_DEVICE)
#undef CHECK_DEVICE
    d->fn.vkGetDeviceQueue(d->dev, info->queue_family, 0, &d->queue);
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = info->queue_family};
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if ((vr = d->fn.vkCreateCommandPool(d->dev, &pci, NULL, &d->cmd_pool)) != VK_SUCCESS ||
        (cai.commandPool = d->cmd_pool, (vr = d->fn.vkAllocateCommandBuffers(d->dev, &cai, &d->cmd))) != VK_SUCCESS ||
        (vr = d->fn.vkCreateFence(d->dev, &fci, NULL, &d->fence)) != VK_SUCCESS) {
        rc = hl_err_set(err, HL_ENOMEM, "Vulkan command objects on %s: %s", info->name, hl_vk_result_name(vr));
        goto fail;
    }
    *out = d;
    return 0;
fail:
    hl_vk_device_close(d);
    return rc;
}

void hl_vk_device_close(hl_vk_device *d) {
    if (!d) return;
    if (d->dev) {
        if (d->fn.vkDeviceWaitIdle) d->fn.vkDeviceWaitIdle(d->dev);
        if (d->fence) d->fn.vkDestroyFence(d->dev, d->fence, NULL);
        if (d->cmd_pool) d->fn.vkDestroyCommandPool(d->dev, d->cmd_pool, NULL);
        if (d->fn.vkDestroyDevice) d->fn.vkDestroyDevice(d->dev, NULL);
    }
    pthread_mutex_destroy(&d->submit_mu);
    free(d);
}

uint64_t hl_vk_device_free_bytes(hl_vk_device *d) {
    const hl_vk_device_info *info = &d->inst->devices[d->index];
    VkPhysicalDeviceMemoryBudgetPropertiesEXT bud = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 m2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2,
                                            .pNext = info->memory_budget ? &bud : NULL};
    d->fn.vkGetPhysicalDeviceMemoryProperties2(d->phys, &m2);
    uint64_t best = 0;
    for (uint32_t i = 0; i < m2.memoryProperties.memoryHeapCount; i++) {
        const VkMemoryHeap *h = &m2.memoryProperties.memoryHeaps[i];
        if (!(h->flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)) continue;
        uint64_t free_b;
        if (info->memory_budget) free_b = bud.heapBudget[i] > bud.heapUsage[i] ? bud.heapBudget[i] - bud.heapUsage[i] : 0;
        else free_b = h->size > d->allocated ? h->size - d->allocated : 0;
        if (free_b > best) best = free_b;
    }
    return best;
}
