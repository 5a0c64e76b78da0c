# dfv_gpu_metrics: a CUDA worker's GPU metrics through NVML (gpu_metrics.cc).
# Always built: it declares the few NVML entry points it uses (nvml_api.h)
# and opens the driver's libnvidia-ml.so.1 at run time, so it needs neither
# the NVML header nor a link against the library, and a worker without the
# driver still starts (and reports no GPU series).
#
# Where NVML's header is found (the CUDA toolkit's nvml.h: CUDAToolkit_ROOT /
# CUDA_HOME / CUDA_PATH as CMake variables or environment, /usr/local/cuda,
# the system paths), nvml_abi_check.cc is compiled into it too: the build
# fails if nvml_api.h disagrees with nvml.h. DFV_WITH_NVML_CHECK=OFF skips
# that; ON fails the configure when nvml.h is not found.
set(DFV_WITH_NVML_CHECK AUTO CACHE STRING "Check nvml_api.h against the CUDA toolkit's nvml.h (AUTO, ON, OFF)")
set_property(CACHE DFV_WITH_NVML_CHECK PROPERTY STRINGS AUTO ON OFF)

add_library(dfv_gpu_metrics ${CMAKE_CURRENT_LIST_DIR}/gpu_metrics.cc)
add_library(dfv::gpu_metrics ALIAS dfv_gpu_metrics)
target_link_libraries(dfv_gpu_metrics
  PUBLIC dfv::options absl::status prometheus-cpp::core
  PRIVATE absl::strings spdlog::spdlog ${CMAKE_DL_LIBS})

if(DFV_WITH_NVML_CHECK)
  set(_dfv_nvml_hints)
  foreach(_dfv_root IN ITEMS "${CUDAToolkit_ROOT}" "$ENV{CUDAToolkit_ROOT}" "${CUDA_HOME}" "$ENV{CUDA_HOME}"
                             "${CUDA_PATH}" "$ENV{CUDA_PATH}" /usr/local/cuda)
    if(_dfv_root)
      list(APPEND _dfv_nvml_hints "${_dfv_root}")
    endif()
  endforeach()
  find_path(NVML_INCLUDE_DIR nvml.h HINTS ${_dfv_nvml_hints} PATH_SUFFIXES include targets/x86_64-linux/include)
  if(NVML_INCLUDE_DIR)
    message(STATUS "dfv: GPU metrics' NVML declarations checked against ${NVML_INCLUDE_DIR}/nvml.h")
    target_sources(dfv_gpu_metrics PRIVATE ${CMAKE_CURRENT_LIST_DIR}/nvml_abi_check.cc)
    set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/nvml_abi_check.cc PROPERTIES
      INCLUDE_DIRECTORIES "${NVML_INCLUDE_DIR}")
  elseif(DFV_WITH_NVML_CHECK STREQUAL "ON")
    message(FATAL_ERROR "dfv: DFV_WITH_NVML_CHECK=ON but nvml.h was not found (set CUDAToolkit_ROOT)")
  else()
    message(STATUS "dfv: nvml.h not found; GPU metrics built from nvml_api.h alone (NVML is loaded at run time)")
  endif()
endif()
