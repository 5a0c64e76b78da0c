#include "worker/dist/rendezvous.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <unistd.h>

#include <climits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "common/rpc/rpc.h"
#include "worker/dist/gloo_communicator.h"
#include "worker/dist/status_util.h"
#ifdef DFV_HAVE_NCCL
#include "worker/dist/nccl_communicator.h"
#endif

namespace dfv::dist {
namespace {

std::string Unbracket(const std::string& host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') return host.substr(1, host.size() - 2);
  return host;
}

double Seconds(std::chrono::milliseconds ms) { return ms.count() / 1000.0; }

// This machine's (or container's) host name; ranks that report the same one
// share its cores.
std::string HostName() {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

absl::StatusOr<ProcessGroup> Meet(const RendezvousOptions& options);

}  // namespace

absl::StatusOr<ProcessGroup> Rendezvous(const RendezvousOptions& options) {
  absl::StatusOr<ProcessGroup> group = Meet(options);
  if (group.ok() || options.secret.empty()) return group;
  // c10d's errors quote the store's keys, which hold the secret, and a
  // rendezvous error becomes the job's reason, which every client sees.
  return absl::Status(group.status().code(),
                      absl::StrReplaceAll(group.status().message(), {{options.secret, "<secret>"}}));
}

namespace {

absl::StatusOr<ProcessGroup> Meet(const RendezvousOptions& options) {
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", options.rank, " of world size ", options.world_size));
  }
  if (options.backend != "gloo" && options.backend != "nccl") {
    return absl::InvalidArgumentError(absl::StrCat("unknown backend '", options.backend, "' (gloo | nccl)"));
  }
  absl::StatusOr<rpc::HostPort> parsed = rpc::ParseHostPort(options.address, "--rendezvous");
  if (!parsed.ok()) return parsed.status();
  const std::string host = Unbracket(parsed->host);
  const bool server = options.rank == 0;
  if (!server && parsed->port == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rendezvous ", options.address, ": rank ", options.rank, " needs rank 0's port"));
  }

  // Rank 0 announces (and Gloo binds to) the data-plane address when there
  // is one: the worker's control address may be on another network.
  const std::string own_host = options.data_plane_address.empty() ? parsed->host : options.data_plane_address;

  ProcessGroup group;
  std::string bound;
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(parsed->port);
    store_options.isServer = server;
    store_options.numWorkers = options.world_size;
    store_options.waitWorkers = false;  // announce the address first
    store_options.timeout = options.timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(host, store_options);
    const std::string published_host = server ? own_host : parsed->host;
    bound = published_host.find(':') != std::string::npos && published_host.front() != '['
                ? absl::StrCat("[", published_host, "]:", store->getPort())
                : absl::StrCat(published_host, ":", store->getPort());
    // Every key of this group lives under the secret (see the header).
    if (options.secret.empty()) {
      group.store = store;
    } else {
      group.store = c10::make_intrusive<c10d::PrefixStore>(absl::StrCat("dfv-secret/", options.secret), store);
    }
  } catch (const std::exception& e) {
    return CollectiveFailure(server ? absl::StrCat("rendezvous: listening on ", options.address)
                                    : absl::StrCat("rendezvous: reaching rank 0 at ", options.address, " within ",
                                                   Seconds(options.timeout), " s"),
                             e.what());
  }
  if (server && options.on_listening) options.on_listening(bound);

  // Everyone checks in, with its host name, before the backend connects: the
  // backends wait for peers with their (much longer) collective timeout, the
  // rendezvous must give up after its own.
  try {
    const std::string me = HostName();
    group.store->set(absl::StrCat("dfv/arrived/", options.rank), std::vector<uint8_t>(me.begin(), me.end()));
    std::vector<std::string> keys;
    for (int r = 0; r < options.world_size; ++r) keys.push_back(absl::StrCat("dfv/arrived/", r));
    group.store->wait(keys, options.timeout);
    group.local_world_size = 0;
    for (const std::string& key : keys) {
      const std::vector<uint8_t> host = group.store->get(key);
      if (std::string(host.begin(), host.end()) == me) ++group.local_world_size;
    }
  } catch (const std::exception& e) {
    absl::Status s = CollectiveFailure("rendezvous", e.what());
    if (absl::IsDeadlineExceeded(s)) {
      return absl::DeadlineExceededError(absl::StrFormat("rendezvous at %s: not all %d ranks arrived within %g s",
                                                         bound, options.world_size, Seconds(options.timeout)));
    }
    return s;
  }

  absl::StatusOr<std::unique_ptr<Communicator>> communicator;
  if (options.backend == "nccl") {
#ifdef DFV_HAVE_NCCL
    communicator = NcclCommunicator::Create(group.store, options.rank, options.world_size, options.cuda_device,
                                            options.collective_timeout);
#else
    return absl::UnimplementedError("this build has no NCCL (the CUDA toolkit was not found at configure time)");
#endif
  } else {
    // Ranks that all share this host try shared memory first; a rank that
    // cannot map the segment sends them all to Gloo (every rank sees the same
    // reports, so they agree).
    bool settled = false;
    if (options.shared_memory && options.world_size > 1 && group.local_world_size == options.world_size) {
      ShmOptions shm = options.shm;
      shm.setup_timeout = options.timeout;
      shm.collective_timeout = options.collective_timeout;
      communicator = CreateShmCommunicator(group.store, options.rank, options.world_size, shm);
      settled = !absl::IsFailedPrecondition(communicator.status());
      if (!settled) group.transport_note = absl::StrCat("not over shared memory: ", communicator.status().message());
    }
    if (!settled) {
      GlooOptions gloo;
      if (!options.data_plane_address.empty()) {
        gloo.interface_host = Unbracket(options.data_plane_address);
      } else if (rpc::IsLoopbackHost(host)) {
        // Ranks that meet on a loopback address share one host: talk over it.
        gloo.interface_host = host == "localhost" ? "127.0.0.1" : host;
      }
      gloo.timeout = options.collective_timeout;
      communicator = CreateGlooCommunicator(group.store, options.rank, options.world_size, gloo);
    }
  }
  if (!communicator.ok()) {
    const absl::Status& s = communicator.status();
    if (absl::IsDeadlineExceeded(s)) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "rendezvous at %s: not all %d ranks arrived within %g s (%s)", bound, options.world_size,
          Seconds(options.timeout), s.message()));
    }
    return s;
  }
  group.communicator = *std::move(communicator);
  return group;
}

}  // namespace

}  // namespace dfv::dist
