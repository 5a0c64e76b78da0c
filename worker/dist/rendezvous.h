// Per-job rendezvous: how the ranks of one attempt find each other. Rank 0
// runs a c10d TCPStore on a port of its own (port 0 = any free port, so jobs
// sharing a host never clash) and announces the bound address; the daemon
// relays it through the coordinator to the other ranks, which connect to it.
// Over the store the ranks then build the backend's communicator.
//
// The attempt's secret: every key the ranks write or wait for (check-in,
// Gloo's and NCCL's connection details) lives under the secret, so a process
// without it that reaches the store's port can neither join the group nor
// read where the ranks listen (LibTorch 1.13's TCPStore cannot list keys and
// has no authentication of its own; it listens on every interface of rank
// 0's host). Nothing on the store or between the ranks is encrypted.
#ifndef DFV_WORKER_DIST_RENDEZVOUS_H_
#define DFV_WORKER_DIST_RENDEZVOUS_H_

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/dist/communicator.h"
#include "worker/dist/shm_communicator.h"

namespace dfv::dist {

struct RendezvousOptions {
  // HOST:PORT of rank 0's store. Rank 0 listens on PORT (0: any free port);
  // the others connect to it.
  std::string address;
  // The attempt's secret (Assignment.rendezvous_secret): only ranks with the
  // same one meet. Empty: no secret (tests and benchmarks on loopback).
  std::string secret;
  // This host's data-plane address (an IP or host name of an interface the
  // other ranks reach): Gloo binds to it, and rank 0 announces its store
  // with it. Empty: the host of `address` (Gloo binds to it when it is
  // loopback, else to the interface the host name resolves to).
  std::string data_plane_address;
  int rank = 0;
  int world_size = 1;
  // Every rank must have arrived within this, else DEADLINE_EXCEEDED.
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  // A single collective's limit once connected.
  std::chrono::milliseconds collective_timeout{std::chrono::minutes(5)};
  // "gloo" (CPU tensors) or "nccl" (CUDA tensors; only in builds with NCCL).
  std::string backend = "gloo";
  // Backend "gloo" only: when every rank is on this host (the same host
  // name), collectives go through a shared-memory segment
  // (shm_communicator.h, backend "shm") instead of Gloo's loopback TCP. If a
  // rank cannot map the segment (another container, a full /dev/shm), all
  // ranks use Gloo and ProcessGroup::transport_note says why.
  bool shared_memory = true;
  ShmOptions shm;  // its timeouts are set from the two above
  int cuda_device = 0;
  // Rank 0 only: called with the store's HOST:PORT (HOST: the data-plane
  // address when set, else the host of `address`) as soon as it listens,
  // before waiting for the other ranks.
  std::function<void(const std::string& address)> on_listening;
};

struct ProcessGroup {
  c10::intrusive_ptr<c10d::Store> store;
  std::unique_ptr<Communicator> communicator;
  // Ranks of the group on this host (same host name), this one included: they
  // share its cores.
  int local_world_size = 1;
  // Why the ranks, all on this host, did not share memory (empty otherwise).
  std::string transport_note;
};

// Meets the other ranks and connects the backend. Never throws. Errors:
// INVALID_ARGUMENT (bad address/rank), DEADLINE_EXCEEDED (not every rank
// arrived in time), UNAVAILABLE (the store or a peer went away),
// UNIMPLEMENTED (nccl in a build without it).
absl::StatusOr<ProcessGroup> Rendezvous(const RendezvousOptions& options);

}  // namespace dfv::dist

#endif  // DFV_WORKER_DIST_RENDEZVOUS_H_
