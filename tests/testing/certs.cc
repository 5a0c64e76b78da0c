#include "tests/testing/certs.h"

#include <stdio.h>
#include <sys/wait.h>

#include "absl/strings/str_cat.h"

namespace dfv::testing {
namespace {

// Test paths come from TempDir() and test names: no single quotes in them.
std::string Quote(const std::string& text) { return absl::StrCat("'", text, "'"); }

}  // namespace

absl::Status MakeCerts(const std::string& dir, const std::vector<std::string>& workers,
                       const std::string& extra_sans) {
  std::string command = absl::StrCat("DFV_CERT_SANS=", Quote(extra_sans), " ", Quote(DFV_CERTS_SCRIPT), " ",
                                     Quote(dir));
  for (const std::string& worker : workers) absl::StrAppend(&command, " ", Quote(worker));
  absl::StrAppend(&command, " 2>&1");
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError(absl::StrCat("cannot run ", command));
  std::string output;
  char buffer[512];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  const int status = ::pclose(pipe);
  if (status != 0) {
    return absl::InternalError(absl::StrCat(command, " failed (wait status ", status, "):\n", output));
  }
  return absl::OkStatus();
}

rpc::TlsFiles CoordinatorTls(const std::string& dir) {
  rpc::TlsFiles files;
  files.cert = absl::StrCat(dir, "/coordinator.pem");
  files.key = absl::StrCat(dir, "/coordinator.key");
  files.ca = absl::StrCat(dir, "/ca.pem");
  return files;
}

rpc::TlsFiles WorkerTls(const std::string& dir, const std::string& worker) {
  rpc::TlsFiles files;
  files.cert = absl::StrCat(dir, "/worker-", worker, ".pem");
  files.key = absl::StrCat(dir, "/worker-", worker, ".key");
  files.ca = absl::StrCat(dir, "/ca.pem");
  return files;
}

rpc::TlsFiles ClientTls(const std::string& dir) {
  rpc::TlsFiles files;
  files.ca = absl::StrCat(dir, "/ca.pem");
  return files;
}

}  // namespace dfv::testing
