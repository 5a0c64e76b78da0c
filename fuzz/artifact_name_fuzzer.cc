// Fuzz target: artifact-name validation (common/file_util.h
// ValidateArtifactName), which the coordinator applies to every name a worker
// uploads or a client asks for and dfvctl applies before writing a download.
//
// Input: the name's bytes.
//
// Checks the property the rule exists for, derived independently of the rule
// itself: an accepted name, joined below a folder, stays below it and
// normalises to itself (no "..", ".", empty or absolute component), has no
// byte a shell or another file system would read differently (only printable
// ASCII other than '\\'), and no component a dotfile (the artifact store's
// temporary files start with '.'); a refused name gets INVALID_ARGUMENT.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "common/file_util.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string name(dfv::fuzz::AsText(data, size));
  const absl::Status status = dfv::ValidateArtifactName(name);
  if (!status.ok()) {
    DFV_FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument, status.ToString());
    DFV_FUZZ_CHECK(!status.message().empty(), "a refusal without a message");
    return 0;
  }
  DFV_FUZZ_CHECK(!name.empty() && name.size() <= dfv::kMaxRelativePathBytes, "accepted a name of this length");
  for (char c : name) {
    DFV_FUZZ_CHECK(c > ' ' && c < 0x7f && c != '\\', "accepted a name with an unsafe byte: " + name);
  }
  const std::filesystem::path base("/store/job");
  const std::filesystem::path joined = (base / name).lexically_normal();
  DFV_FUZZ_CHECK(joined.lexically_relative(base).string() == name,
                 "accepted a name that does not stay itself below a folder: " + name + " -> " + joined.string());
  int components = 0;
  for (const std::filesystem::path& part : std::filesystem::path(name)) {
    ++components;
    DFV_FUZZ_CHECK(!part.empty() && part.string().front() != '.', "accepted a hidden or empty component: " + name);
  }
  DFV_FUZZ_CHECK(components <= dfv::kMaxRelativePathDepth, "accepted a name this deep: " + name);
  return 0;
}
