// What the fuzz targets in this folder share: a check that fails loudly (a
// failed check is a finding, like a crash), and a private scratch folder for
// the targets whose product entry point reads a file.
//
// Single-threaded, like libFuzzer's calls into a target.
#ifndef DFV_FUZZ_FUZZ_UTIL_H_
#define DFV_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

// Aborts with the condition, the file and line and `message` (a std::string
// or C string) when `condition` is false. libFuzzer saves the input as a
// crash; the replayer exits non-zero.
#define DFV_FUZZ_CHECK(condition, message)                                        \
  do {                                                                            \
    if (!(condition)) ::dfv::fuzz::CheckFailed(#condition, __FILE__, __LINE__, message); \
  } while (false)

namespace dfv::fuzz {

[[noreturn]] void CheckFailed(const char* condition, const char* file, int line,
                              const std::string& message);

// The bytes as a string_view.
inline std::string_view AsText(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

// A folder of this process's own under $TMPDIR (or /tmp), made on first use
// and removed at exit. Aborts when it cannot be made.
const std::string& ScratchDir();

// Writes `bytes` to ScratchDir()/`name` (replacing it) and returns the path.
// Aborts when the file cannot be written: the scratch folder is the
// harness's, not the code under test's.
std::string WriteScratchFile(const std::string& name, std::string_view bytes);

}  // namespace dfv::fuzz

#endif  // DFV_FUZZ_FUZZ_UTIL_H_
