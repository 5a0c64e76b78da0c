// dist::Communicator over a POSIX shared-memory segment: the CPU transport
// between ranks that share one host (Gloo's loopback TCP costs about 0.8 ms
// per MiB summed on two ranks; a copy through shared memory does not touch the
// network stack).
//
// Setup (CreateShmCommunicator, every rank at once): rank 0 creates a
// segment in /dev/shm (mode 0600, a random name), reserves its pages
// (posix_fallocate, so a full /dev/shm fails here rather than with SIGBUS
// later) and publishes its name and a random token through the store (under
// the attempt's secret prefix when the store has one). Every rank maps it,
// checks the token, takes an OFD lock on its own byte of the file (the lock
// is how peers tell that it is still there: the kernel drops it when the
// process dies or closes the segment) and reports "mapped" or why not. Once
// every rank has reported, rank 0 unlinks the name, so nothing is left in
// /dev/shm whatever happens later (only a rank 0 killed during setup leaves
// its empty segment behind). If any rank could not map the segment,
// every rank returns FAILED_PRECONDITION with the reasons, and the caller
// falls back to another transport (the rendezvous falls back to Gloo).
//
// Collectives run on one thread per communicator, in the order they were
// started, so every rank does the same collectives in the same order. The
// segment holds two sets of buffers (one slot per rank and a result) of
// `chunk_bytes` each; a tensor moves in chunks, alternating sets:
//   all-reduce: each rank copies its chunk into its slot; barrier; each rank
//     sums its share of the chunk over the slots, always in rank order, into
//     the result; barrier; each rank copies the result out. Every element is
//     summed once, by one rank, so all ranks get the same bits.
//   broadcast: the root copies its chunk into the result; barrier; the
//     others copy it out.
// Two sets mean a chunk's buffers are written again only after every rank has
// passed the next chunk's first barrier, by which time it has finished
// reading them: one or two barriers per chunk, no more.
//
// Barriers spin for a few microseconds, then sleep on a futex in the segment.
// While asleep a rank checks, every 50 ms, that its peers still hold their
// locks (else UNAVAILABLE: a peer went away) and that the collective has not
// outlived `collective_timeout` (else DEADLINE_EXCEEDED). After a failure
// every later collective fails at once with the first failure. Nothing here
// throws.
#ifndef DFV_WORKER_DIST_SHM_COMMUNICATOR_H_
#define DFV_WORKER_DIST_SHM_COMMUNICATOR_H_

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/dist/communicator.h"

namespace dfv::dist {

struct ShmOptions {
  // Bytes of each of the segment's 2 x (world_size + 1) buffers: the segment
  // is about 2 (world_size + 1) chunk_bytes.
  size_t chunk_bytes = size_t{256} << 10;
  // How long setup waits for the other ranks through the store.
  std::chrono::milliseconds setup_timeout{std::chrono::seconds(60)};
  // A single collective's limit.
  std::chrono::milliseconds collective_timeout{std::chrono::minutes(5)};
};

// The store key rank 0 publishes the segment under, and the prefix of the
// keys the ranks report on. Each communicator needs a store (or PrefixStore)
// of its own.
inline constexpr char kShmSegmentKey[] = "dfv/shm/segment";
inline constexpr char kShmMappedKeyPrefix[] = "dfv/shm/mapped/";

// Every rank of the group calls this with the same store and world size.
// Errors: INVALID_ARGUMENT (bad rank, size or chunk), FAILED_PRECONDITION
// (some rank could not create or map the segment; every rank gets it, with
// the reasons: fall back to another transport), DEADLINE_EXCEEDED (a rank did
// not report within setup_timeout), UNAVAILABLE (the store went away).
absl::StatusOr<std::unique_ptr<Communicator>> CreateShmCommunicator(c10::intrusive_ptr<c10d::Store> store,
                                                                    int rank, int world_size,
                                                                    const ShmOptions& options);

// The /dev/shm name of `communicator`'s segment (unlinked by the time
// CreateShmCommunicator returns), or empty when it is not a shared-memory
// communicator. For tests.
std::string ShmSegmentName(const Communicator& communicator);

}  // namespace dfv::dist

#endif  // DFV_WORKER_DIST_SHM_COMMUNICATOR_H_
