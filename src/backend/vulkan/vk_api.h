/* The Vulkan entry points the backend calls, as one table of function
 * pointers filled at run time. The loader (libvulkan.so.1) is opened with
 * dlopen, never linked, so the same binary runs on a machine without Vulkan
 * (the CPU backend then runs, and the reason is logged). Only the headers of
 * libvulkan-dev are used at build time (VK_NO_PROTOTYPES: no symbol of the
 * loader is referenced).
 *
 * VK_GLOBAL_FNS are resolved with a NULL instance, VK_INSTANCE_FNS with the
 * instance, VK_DEVICE_FNS with the device (vkGetDeviceProcAddr, which skips
 * the loader's dispatch trampoline). The table is owned by whoever opened it
 * (vk_device.c's hl_vk_instance); nothing here is global. */
#ifndef HL_BACKEND_VULKAN_VK_API_H
#define HL_BACKEND_VULKAN_VK_API_H

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#define VK_GLOBAL_FNS(X)                 \
    X(vkCreateInstance)                  \
    X(vkEnumerateInstanceVersion)        \
    X(vkEnumerateInstanceExtensionProperties)

#define VK_INSTANCE_FNS(X)                      \
    X(vkDestroyInstance)                        \
    X(vkEnumeratePhysicalDevices)               \
    X(vkGetPhysicalDeviceProperties)            \
    X(vkGetPhysicalDeviceProperties2)           \
    X(vkGetPhysicalDeviceFeatures2)             \
    X(vkGetPhysicalDeviceMemoryProperties)      \
    X(vkGetPhysicalDeviceMemoryProperties2)     \
    X(vkGetPhysicalDeviceQueueFamilyProperties) \
    X(vkEnumerateDeviceExtensionProperties)     \
    X(vkCreateDevice)                           \
    X(vkGetDeviceProcAddr)

#define VK_DEVICE_FNS(X)              \
    X(vkDestroyDevice)                \
    X(vkGetDeviceQueue)               \
    X(vkDeviceWaitIdle)               \
    X(vkCreateBuffer)                 \
    X(vkDestroyBuffer)                \
    X(vkGetBufferMemoryRequirements)  \
    X(vkAllocateMemory)               \
    X(vkFreeMemory)                   \
    X(vkBindBufferMemory)             \
    X(vkMapMemory)                    \
    X(vkUnmapMemory)                  \
    X(vkCreateShaderModule)           \
    X(vkDestroyShaderModule)          \
    X(vkCreateDescriptorSetLayout)    \
    X(vkDestroyDescriptorSetLayout)   \
    X(vkCreatePipelineLayout)         \
    X(vkDestroyPipelineLayout)        \
    X(vkCreateComputePipelines)       \
    X(vkDestroyPipeline)              \
    X(vkCreateDescriptorPool)         \
    X(vkDestroyDescriptorPool)        \
    X(vkResetDescriptorPool)          \
    X(vkAllocateDescriptorSets)       \
    X(vkUpdateDescriptorSets)         \
    X(vkCreateCommandPool)            \
    X(vkDestroyCommandPool)           \
    X(vkAllocateCommandBuffers)       \
    X(vkFreeCommandBuffers)           \
    X(vkResetCommandBuffer)           \
    X(vkBeginCommandBuffer)           \
    X(vkEndCommandBuffer)             \
    X(vkCmdBindPipeline)              \
    X(vkCmdBindDescriptorSets)        \
    X(vkCmdPushConstants)             \
    X(vkCmdDispatch)                  \
    X(vkCmdCopyBuffer)                \
    X(vkCmdPipelineBarrier)           \
    X(vkQueueSubmit)                  \
    X(vkCreateFence)                  \
    X(vkDestroyFence)                 \
    X(vkWaitForFences)                \
    X(vkResetFences)

#define VK_FN_MEMBER(name) PFN_##name name;
typedef struct hl_vk_fns {
    PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr;
    VK_GLOBAL_FNS(VK_FN_MEMBER)
    VK_INSTANCE_FNS(VK_FN_MEMBER)
    VK_DEVICE_FNS(VK_FN_MEMBER)
} hl_vk_fns;
#undef VK_FN_MEMBER

#endif
