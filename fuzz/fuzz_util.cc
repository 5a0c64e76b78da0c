#include "fuzz/fuzz_util.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace dfv::fuzz {

void CheckFailed(const char* condition, const char* file, int line, const std::string& message) {
  std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n  %s\n", file, line, condition, message.c_str());
  std::fflush(stderr);
  std::abort();
}

namespace {

std::string MakeScratchDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/dfv-fuzz-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    CheckFailed("mkdtemp", __FILE__, __LINE__, "cannot make a scratch folder from " + pattern);
  }
  return pattern;
}

}  // namespace

const std::string& ScratchDir() {
  // Made once per process; removed at exit, also when libFuzzer stops the
  // run by calling exit() (not on a crash, which leaves it for inspection).
  static const std::string* const dir = [] {
    auto* made = new std::string(MakeScratchDir());
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(ScratchDir(), ec);
    });
    return made;
  }();
  return *dir;
}

std::string WriteScratchFile(const std::string& name, std::string_view bytes) {
  const std::string path = ScratchDir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) CheckFailed("out", __FILE__, __LINE__, "cannot write the scratch file " + path);
  return path;
}

}  // namespace dfv::fuzz
