// The /metrics endpoint of a daemon: Prometheus's text format over HTTP,
// served by prometheus-cpp's Exposer on its own threads, with this process's
// metrics (process_collector.h) and the Exposer's own scrape counters always
// included.
//
//   DFV_ASSIGN_OR_RETURN(auto server, MetricsServer::Create("127.0.0.1:0"));
//   server->Register(registry);   // a std::shared_ptr<prometheus::Registry>
//   server->address();            // "127.0.0.1:PORT", the bound port
#ifndef DFV_COMMON_METRICS_METRICS_SERVER_H_
#define DFV_COMMON_METRICS_METRICS_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"

namespace dfv::metrics {

class MetricsServer {
 public:
  // Serves GET /metrics on `listen` (HOST:PORT; port 0 picks a free port).
  // /metrics is always plaintext HTTP, so the host must be a loopback address
  // unless `insecure` (the daemon's --insecure; common/rpc/tls.h
  // CheckListenAddress). INVALID_ARGUMENT for a malformed or refused address;
  // UNAVAILABLE when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Create(const std::string& listen, bool insecure = false);
  ~MetricsServer();

  // Adds what a scrape collects, in registration order. The server keeps
  // only a weak reference: the caller owns `collectable` and keeps it alive
  // while it should be served. Thread-safe.
  void Register(const std::shared_ptr<prometheus::Collectable>& collectable);

  // "HOST:PORT" with the bound port.
  const std::string& address() const { return address_; }

 private:
  MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, std::string address);

  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<prometheus::Collectable> process_;
  std::string address_;
};

}  // namespace dfv::metrics

#endif  // DFV_COMMON_METRICS_METRICS_SERVER_H_
