// The worker's data plane: the address its trainers' Gloo connections bind
// to and rank 0 publishes its rendezvous with, given as an address or as a
// network interface's name (the way GLOO_SOCKET_IFNAME and NCCL_SOCKET_IFNAME
// name one).
#ifndef DFV_WORKER_DAEMON_DATA_PLANE_H_
#define DFV_WORKER_DAEMON_DATA_PLANE_H_

#include <string>

#include "absl/status/statusor.h"

namespace dfv::daemon {

// The first IPv4 address of the network interface `name` (getifaddrs), as
// dotted quad. NOT_FOUND naming the interface (and the interfaces that have
// an IPv4 address) when it has none or does not exist; INTERNAL when
// getifaddrs fails. Thread-safe.
absl::StatusOr<std::string> InterfaceIpv4Address(const std::string& name);

}  // namespace dfv::daemon

#endif  // DFV_WORKER_DAEMON_DATA_PLANE_H_
