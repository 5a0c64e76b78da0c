#include "common/metrics/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/metrics/process_collector.h"
#include "common/rpc/rpc.h"
#include "common/rpc/tls.h"

namespace dfv::metrics {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Create(const std::string& listen, bool insecure) {
  absl::StatusOr<rpc::HostPort> address = rpc::ParseHostPort(listen, "--metrics-listen");
  if (!address.ok()) return address.status();
  rpc::ListenRule rule;
  rule.insecure = insecure;
  rule.tls_supported = false;
  absl::StatusOr<rpc::ListenExposure> exposure = rpc::CheckListenAddress(*address, "--metrics-listen", rule);
  if (!exposure.ok()) return exposure.status();
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

MetricsServer::~MetricsServer() {
  // civetweb's listener thread waits in poll() with a fixed 2 s timeout
  // (compiled in) before it sees the stop flag, so every stop took 2 s. A
  // connection wakes that poll at once: knock on the port until the Exposer
  // is gone. The knocks are plain connect+close; civetweb drops them.
  std::atomic<bool> stopped{false};
  std::thread knocker([this, &stopped] {
    absl::StatusOr<rpc::HostPort> address = rpc::ParseHostPort(address_, "metrics");
    if (!address.ok()) return;
    sockaddr_in peer{};
    peer.sin_family = AF_INET;
    peer.sin_port = htons(static_cast<uint16_t>(address->port));
    if (inet_pton(AF_INET, address->host.c_str(), &peer.sin_addr) != 1) return;  // not IPv4: no shortcut
    while (!stopped.load()) {
      const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) return;
      connect(fd, reinterpret_cast<const sockaddr*>(&peer), sizeof(peer));
      close(fd);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  exposer_.reset();
  stopped.store(true);
  knocker.join();
}

void MetricsServer::Register(const std::shared_ptr<prometheus::Collectable>& collectable) {
  exposer_->RegisterCollectable(collectable);
}

}  // namespace dfv::metrics
