// The few entry points of NVML (the NVIDIA Management Library, the driver's
// libnvidia-ml.so.1) that the worker's GPU metrics use, declared here with
// the types of NVML's C ABI: the CUDA toolkit on dfv's build machines ships
// no nvml.h, and the library is opened at run time (dlopen), so a worker on a
// machine without the driver still starts. Where nvml.h is found, nvml.cmake
// builds nvml_abi_check.cc, which checks these declarations against it.
#ifndef DFV_WORKER_DAEMON_NVML_API_H_
#define DFV_WORKER_DAEMON_NVML_API_H_

namespace dfv::daemon::nvml {

// The shared library of the driver, by its SONAME.
inline constexpr char kLibrary[] = "libnvidia-ml.so.1";

// nvmlReturn_t: an enum of the C API, passed as an int; 0 is NVML_SUCCESS.
using Return = int;
inline constexpr Return kSuccess = 0;

// nvmlDevice_t: an opaque handle.
struct DeviceStruct;
using Device = DeviceStruct*;

// nvmlMemory_t (v1): bytes; total = free + used.
struct Memory {
  unsigned long long total;  // NOLINT(runtime/int): the C ABI's type
  unsigned long long free;   // NOLINT(runtime/int)
  unsigned long long used;   // NOLINT(runtime/int)
};

// nvmlUtilization_t: percent of the last sample period (1/6 s to 1 s).
struct Utilization {
  unsigned int gpu;     // a kernel was running
  unsigned int memory;  // device memory was being read or written
};

// The symbols, by name, and their types.
using InitFn = Return (*)();                                           // nvmlInit_v2
using ShutdownFn = Return (*)();                                       // nvmlShutdown
using ErrorStringFn = const char* (*)(Return);                         // nvmlErrorString
using DeviceGetCountFn = Return (*)(unsigned int*);                    // nvmlDeviceGetCount_v2
using DeviceGetHandleByIndexFn = Return (*)(unsigned int, Device*);    // nvmlDeviceGetHandleByIndex_v2
using DeviceGetMemoryInfoFn = Return (*)(Device, Memory*);             // nvmlDeviceGetMemoryInfo
using DeviceGetUtilizationRatesFn = Return (*)(Device, Utilization*);  // nvmlDeviceGetUtilizationRates

}  // namespace dfv::daemon::nvml

#endif  // DFV_WORKER_DAEMON_NVML_API_H_
