# dfv_dist_nccl: the NCCL backend of dist::Communicator (nccl_communicator.cc),
# built only when NCCL and the CUDA runtime are found. Included from
# worker/dist/CMakeLists.txt; users test `if(TARGET dfv_dist_nccl)` and get
# DFV_HAVE_NCCL=1 through it.
#
# DFV_WITH_NCCL: AUTO (default: build it when found), ON (fail the configure
# when not found), OFF (never). Search roots: CUDAToolkit_ROOT / CUDA_HOME /
# CUDA_PATH / NCCL_ROOT / NCCL_HOME (CMake variables or environment), then
# /usr/local/cuda and the system paths.
set(DFV_WITH_NCCL AUTO CACHE STRING "Build the NCCL communicator (AUTO, ON, OFF)")
set_property(CACHE DFV_WITH_NCCL PROPERTY STRINGS AUTO ON OFF)

if(NOT DFV_WITH_NCCL)
  message(STATUS "dfv: NCCL backend disabled (DFV_WITH_NCCL=${DFV_WITH_NCCL}); nccl jobs will be refused")
  return()
endif()

set(_dfv_cuda_hints)
foreach(_dfv_root IN ITEMS "${CUDAToolkit_ROOT}" "$ENV{CUDAToolkit_ROOT}" "${CUDA_HOME}" "$ENV{CUDA_HOME}"
                           "${CUDA_PATH}" "$ENV{CUDA_PATH}" "${NCCL_ROOT}" "$ENV{NCCL_ROOT}" "${NCCL_HOME}"
                           "$ENV{NCCL_HOME}" /usr/local/cuda)
  if(_dfv_root)
    list(APPEND _dfv_cuda_hints "${_dfv_root}")
  endif()
endforeach()

find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${_dfv_cuda_hints} /usr/local/cuda/include PATH_SUFFIXES include)
find_library(NCCL_LIBRARY nccl HINTS ${_dfv_cuda_hints} /usr/local/cuda/lib64 PATH_SUFFIXES lib64 lib)
find_path(CUDART_INCLUDE_DIR cuda_runtime.h HINTS ${_dfv_cuda_hints} /usr/local/cuda/include PATH_SUFFIXES include)
find_library(CUDART_LIBRARY cudart HINTS ${_dfv_cuda_hints} /usr/local/cuda/lib64 PATH_SUFFIXES lib64 lib)

set(_dfv_nccl_missing)
foreach(_dfv_var IN ITEMS NCCL_INCLUDE_DIR NCCL_LIBRARY CUDART_INCLUDE_DIR CUDART_LIBRARY)
  if(NOT ${_dfv_var})
    list(APPEND _dfv_nccl_missing ${_dfv_var})
  endif()
endforeach()

if(_dfv_nccl_missing)
  string(REPLACE ";" ", " _dfv_nccl_missing_text "${_dfv_nccl_missing}")
  if(NOT DFV_WITH_NCCL STREQUAL "AUTO")
    message(FATAL_ERROR "dfv: DFV_WITH_NCCL=${DFV_WITH_NCCL} but not found: ${_dfv_nccl_missing_text} "
                        "(set CUDAToolkit_ROOT or NCCL_ROOT)")
  endif()
  message(STATUS "dfv: NCCL backend not built (not found: ${_dfv_nccl_missing_text}); nccl jobs will be refused")
  return()
endif()

file(STRINGS "${NCCL_INCLUDE_DIR}/nccl.h" _dfv_nccl_version_lines REGEX "^#define NCCL_(MAJOR|MINOR|PATCH) ")
set(_dfv_nccl_version "")
foreach(_dfv_part IN ITEMS MAJOR MINOR PATCH)
  string(REGEX MATCH "NCCL_${_dfv_part} ([0-9]+)" _dfv_match "${_dfv_nccl_version_lines}")
  if(_dfv_match)
    list(APPEND _dfv_nccl_version "${CMAKE_MATCH_1}")
  endif()
endforeach()
string(REPLACE ";" "." _dfv_nccl_version "${_dfv_nccl_version}")
message(STATUS "dfv: NCCL backend enabled (NCCL ${_dfv_nccl_version}: ${NCCL_LIBRARY}; CUDA runtime: ${CUDART_LIBRARY})")

add_library(dfv_dist_nccl ${CMAKE_CURRENT_LIST_DIR}/nccl_communicator.cc)
add_library(dfv::dist_nccl ALIAS dfv_dist_nccl)
# The CUDA headers are PUBLIC: nccl_communicator.h hides every CUDA type, but
# tests that cudaMalloc device memory for the pointer-level API include
# cuda_runtime.h themselves.
target_include_directories(dfv_dist_nccl SYSTEM PUBLIC ${CUDART_INCLUDE_DIR} ${NCCL_INCLUDE_DIR})
target_link_libraries(dfv_dist_nccl
  PUBLIC dfv::options absl::status absl::statusor ${NCCL_LIBRARY} ${CUDART_LIBRARY}
  PRIVATE absl::strings)
target_compile_definitions(dfv_dist_nccl PUBLIC DFV_HAVE_NCCL=1)
dfv_use_torch(dfv_dist_nccl)
