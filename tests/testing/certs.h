// Test certificates made by the real deploy/certs.sh, and the TlsFiles of
// each role in its output folder.
#ifndef DFV_TESTS_TESTING_CERTS_H_
#define DFV_TESTS_TESTING_CERTS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/rpc/tls.h"

namespace dfv::testing {

// Runs deploy/certs.sh DIR WORKERS... (with DFV_CERT_SANS=extra_sans when
// not empty). INTERNAL with the script's output when it fails.
absl::Status MakeCerts(const std::string& dir, const std::vector<std::string>& workers = {},
                       const std::string& extra_sans = "");

// The files in a MakeCerts folder: the coordinator's (server, with the CA
// for client certificates), a worker's (client certificate + CA), dfvctl's
// (CA only).
rpc::TlsFiles CoordinatorTls(const std::string& dir);
rpc::TlsFiles WorkerTls(const std::string& dir, const std::string& worker);
rpc::TlsFiles ClientTls(const std::string& dir);

}  // namespace dfv::testing

#endif  // DFV_TESTS_TESTING_CERTS_H_
