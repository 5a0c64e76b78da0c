// Compiled only where nvml.h is found (nvml.cmake): fails the build when
// nvml_api.h's declarations disagree with the real header's.
#include <nvml.h>

#include <cstddef>
#include <type_traits>

#include "worker/daemon/nvml_api.h"

namespace dfv::daemon::nvml {
namespace {

static_assert(sizeof(nvmlReturn_t) == sizeof(Return), "nvmlReturn_t is passed as an int");
static_assert(NVML_SUCCESS == kSuccess);
static_assert(sizeof(nvmlDevice_t) == sizeof(Device));

static_assert(sizeof(nvmlMemory_t) == sizeof(Memory));
static_assert(offsetof(nvmlMemory_t, total) == offsetof(Memory, total));
static_assert(offsetof(nvmlMemory_t, free) == offsetof(Memory, free));
static_assert(offsetof(nvmlMemory_t, used) == offsetof(Memory, used));
static_assert(std::is_same_v<decltype(nvmlMemory_t::used), decltype(Memory::used)>);

static_assert(sizeof(nvmlUtilization_t) == sizeof(Utilization));
static_assert(offsetof(nvmlUtilization_t, gpu) == offsetof(Utilization, gpu));
static_assert(offsetof(nvmlUtilization_t, memory) == offsetof(Utilization, memory));
static_assert(std::is_same_v<decltype(nvmlUtilization_t::gpu), decltype(Utilization::gpu)>);

// The symbols nvml_api.h names have these signatures in nvml.h (with
// nvmlReturn_t, nvmlDevice_t, nvmlMemory_t and nvmlUtilization_t in place of
// their stand-ins).
static_assert(std::is_same_v<decltype(&nvmlInit_v2), nvmlReturn_t (*)()>);
static_assert(std::is_same_v<decltype(&nvmlShutdown), nvmlReturn_t (*)()>);
static_assert(std::is_same_v<decltype(&nvmlErrorString), const char* (*)(nvmlReturn_t)>);
static_assert(std::is_same_v<decltype(&nvmlDeviceGetCount_v2), nvmlReturn_t (*)(unsigned int*)>);
static_assert(
    std::is_same_v<decltype(&nvmlDeviceGetHandleByIndex_v2), nvmlReturn_t (*)(unsigned int, nvmlDevice_t*)>);
static_assert(std::is_same_v<decltype(&nvmlDeviceGetMemoryInfo), nvmlReturn_t (*)(nvmlDevice_t, nvmlMemory_t*)>);
static_assert(
    std::is_same_v<decltype(&nvmlDeviceGetUtilizationRates), nvmlReturn_t (*)(nvmlDevice_t, nvmlUtilization_t*)>);

}  // namespace
}  // namespace dfv::daemon::nvml
