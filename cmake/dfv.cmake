# Helpers shared by every folder's CMakeLists.txt.

# The precompiled-header host: a tiny static library whose PCH every torch
# target reuses (REUSE_FROM), so <torch/torch.h> is parsed once per build.
add_library(dfv_torch_pch STATIC ${PROJECT_SOURCE_DIR}/cmake/torch_pch.cc)
target_link_libraries(dfv_torch_pch PUBLIC dfv::options dfv::torch)
if(DFV_USE_PCH)
  target_precompile_headers(dfv_torch_pch PRIVATE <torch/torch.h>)
endif()

# dfv_use_torch(target): link LibTorch, reuse the shared precompiled header
# and, with DFV_UNITY_BUILD, compile the target's sources in batches.
function(dfv_use_torch target)
  target_link_libraries(${target} PUBLIC dfv::torch)
  if(DFV_USE_PCH)
    set_target_properties(${target} PROPERTIES PRECOMPILE_HEADERS_REUSE_FROM dfv_torch_pch)
  endif()
  if(DFV_UNITY_BUILD)
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 8)
  endif()
endfunction()
