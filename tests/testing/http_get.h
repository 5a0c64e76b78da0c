// A minimal HTTP/1.0 GET for tests that read a daemon's /metrics or a
// Prometheus server's API on loopback. Not for production use.
#ifndef DFV_TESTS_TESTING_HTTP_GET_H_
#define DFV_TESTS_TESTING_HTTP_GET_H_

#include <string>

#include "absl/status/statusor.h"

namespace dfv::testing {

struct HttpResponse {
  int status = 0;     // 200, 404, ...
  std::string body;
};

// GET http://<host_port><path> (host_port "127.0.0.1:PORT"). UNAVAILABLE when
// the connection fails; INTERNAL for a response that is not HTTP.
absl::StatusOr<HttpResponse> HttpGet(const std::string& host_port, const std::string& path);

// "%XX" for every byte that is not unreserved (RFC 3986), for query values.
std::string UrlEncode(const std::string& text);

}  // namespace dfv::testing

#endif  // DFV_TESTS_TESTING_HTTP_GET_H_
