/* Vulkan instances and devices: opening the loader at run time, listing
 * the physical devices with what the kernels care about (memory, fp16,
 * 8/16-bit storage, integer dot products, cooperative matrices, subgroup
 * size, shared memory), choosing one, and opening it as a logical device
 * with one compute queue, one command buffer and one fence.
 *
 * Choosing (hl_vk_pick): an explicit index is taken as given (tests ask for
 * lavapipe that way); `auto` takes the discrete or integrated GPU with the
 * most device-local memory and never a CPU implementation (lavapipe,
 * SwiftShader), which would be slower than the CPU backend. The caller reads
 * the settings (engine.backend, HYPERLAMA_VULKAN_DEVICE) and passes them in.
 *
 * Ownership: an hl_vk_instance owns the loader handle, the VkInstance and
 * the device list; an hl_vk_device borrows its instance (which must outlive
 * it) and owns its VkDevice and everything created on it. */
#ifndef HL_BACKEND_VULKAN_VK_DEVICE_H
#define HL_BACKEND_VULKAN_VK_DEVICE_H

#include "backend/vulkan/vk_api.h"
#include "base/err.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hl_vk_device_info {
    char name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
    char driver[VK_MAX_DRIVER_NAME_SIZE];   /* "llvmpipe", "NVIDIA" ... ("" before Vulkan 1.2) */
    VkPhysicalDeviceType type;
    uint32_t api_version;
    uint64_t device_local_bytes;            /* the largest device-local heap */
    uint32_t subgroup_size;
    int subgroup_arith;                     /* basic, arithmetic and shuffle subgroup operations in
                                               compute shaders (the subgroup matrix products) */
    uint32_t max_shared_bytes;              /* maxComputeSharedMemorySize */
    uint32_t max_groups[3];                 /* maxComputeWorkGroupCount */
    int storage8, storage16;                /* 8/16-bit storage buffer access (required) */
    int fp16, int8;                         /* shaderFloat16, shaderInt8 arithmetic */
    int int_dot;                            /* shaderIntegerDotProduct (Vulkan 1.3 / KHR; enabled
                                               by hl_vk_device_open where present) */
    int coopmat;                            /* VK_KHR_cooperative_matrix or VK_NV_cooperative_matrix */
    int memory_budget;                      /* VK_EXT_memory_budget: free device memory can be asked */
    int uma;                                /* every device-local memory type is also host-visible
                                               (integrated GPUs, lavapipe): weights need no staging */
    uint32_t queue_family;                  /* a family with compute */
    int usable;                             /* Vulkan >= 1.2, a compute queue, 8/16-bit storage */
} hl_vk_device_info;

typedef struct hl_vk_instance {
    void *lib;          /* dlopen handle of libvulkan.so.1 */
    hl_vk_fns fn;       /* global and instance entry points */
    VkInstance inst;
    uint32_t n_devices;
    VkPhysicalDevice *phys;
    hl_vk_device_info *devices;
} hl_vk_instance;

typedef struct hl_vk_device {
    hl_vk_instance *inst;   /* borrowed */
    int index;              /* into inst->devices */
    hl_vk_fns fn;           /* the instance's table plus device entry points */
    VkPhysicalDevice phys;
    VkDevice dev;
    VkQueue queue;
    VkPhysicalDeviceMemoryProperties mem;
    VkCommandPool cmd_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    pthread_mutex_t submit_mu;  /* one submission at a time on cmd (several models share the device) */
    uint64_t allocated;         /* bytes of device-local memory this device's buffers hold */
    uint64_t freed;             /* buffers freed so far: a kept recording older than a free may name it */
    size_t staging_bytes;       /* chunk of a staged upload (HL_VK_STAGING_BYTES; tests make it small) */
} hl_vk_device;

/* HL_ENOTSUP with the reason when there is no loader, no instance or no
 * device: the caller falls back to the CPU and logs the message. */
int hl_vk_instance_open(hl_vk_instance **out, hl_err *err);
void hl_vk_instance_close(hl_vk_instance *vi);

/* requested >= 0: that device (it must be usable); -1: auto (never a CPU
 * implementation unless allow_cpu). Returns the index, or < 0 with err set. */
int hl_vk_pick(const hl_vk_instance *vi, int requested, int allow_cpu, hl_err *err);

/* "llvmpipe (LLVM 15.0.6, 256 bits) (cpu, Vulkan 1.3.230, 2.0 GiB, subgroup 8 with arithmetic, fp16, int8, int8 dot)" */
void hl_vk_describe(const hl_vk_device_info *d, char *buf, size_t n);
const char *hl_vk_type_name(VkPhysicalDeviceType t); /* "discrete", "integrated", "virtual", "cpu", "other" */

int hl_vk_device_open(hl_vk_instance *vi, int index, hl_vk_device **out, hl_err *err);
void hl_vk_device_close(hl_vk_device *d);

/* Device-local memory still free: the driver's budget minus usage
 * (VK_EXT_memory_budget, which counts other processes too), else the
 * largest device-local heap minus what this device allocated. */
uint64_t hl_vk_device_free_bytes(hl_vk_device *d);

/* Text for a VkResult ("VK_ERROR_OUT_OF_DEVICE_MEMORY"). */
const char *hl_vk_result_name(VkResult r);

#endif
