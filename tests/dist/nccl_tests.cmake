# The NCCL communicator's tests, built only when worker/dist/nccl.cmake found
# NCCL and the CUDA runtime (it defines dfv_dist_nccl). Included from
# tests/dist/CMakeLists.txt. Its GPU tests skip on a machine without a CUDA
# device; the rest run anywhere.
if(TARGET dfv_dist_nccl)
  dfv_add_test(nccl_communicator_test TORCH
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/nccl_communicator_test.cc
    DEPS dfv_dist_nccl)
endif()
