#include "common/metrics/metrics_server.h"

#include <exception>

#include "absl/strings/str_cat.h"
#include "common/metrics/process_collector.h"
#include "common/rpc/rpc.h"

namespace dfv::metrics {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Create(const std::string& listen) {
  absl::StatusOr<rpc::HostPort> address = rpc::ParseHostPort(listen, "--metrics-listen");
  if (!address.ok()) return address.status();
  if (!rpc::IsLoopbackHost(address->host)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics-listen: no TLS configured, so the address must be a loopback address (got ", address->host,
        ")"));
  }
  // CivetServer (under the Exposer) takes "HOST:PORT", IPv6 as "[::1]:PORT".
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(listen, /*num_threads=*/2);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("--metrics-listen: cannot serve on ", listen, ": ", e.what()));
  }
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty() || ports.front() <= 0) {
    return absl::UnavailableError(absl::StrCat("--metrics-listen: cannot serve on ", listen));
  }
  const std::string host = address->host == "localhost" ? "127.0.0.1" : address->host;
  return std::unique_ptr<MetricsServer>(
      new MetricsServer(std::move(exposer), absl::StrCat(host, ":", ports.front())));
}

MetricsServer::MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, std::string address)
    : exposer_(std::move(exposer)), process_(std::make_shared<ProcessCollector>()), address_(std::move(address)) {
  exposer_->RegisterCollectable(process_);
}

MetricsServer::~MetricsServer() = default;

void MetricsServer::Register(const std::shared_ptr<prometheus::Collectable>& collectable) {
  exposer_->RegisterCollectable(collectable);
}

}  // namespace dfv::metrics
