// Runs N ranks of a data-parallel group as N threads of the test process,
// meeting through a real rendezvous (a TCPStore on a loopback port). The
// threads share a host, so the group talks over shared memory unless
// `configure` says otherwise (UseGloo).
#ifndef DFV_TESTS_DIST_DIST_TEST_UTIL_H_
#define DFV_TESTS_DIST_DIST_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "worker/dist/rendezvous.h"

namespace dfv::testing {

inline constexpr char kTestSecret[] = "0123456789abcdef0123456789abcdef";

// A `configure` for RunRanks: the group talks over Gloo even though every
// rank is on this host (the default would be shared memory).
inline void UseGloo(dist::RendezvousOptions& options) { options.shared_memory = false; }

// Calls body(rank, group) on `world` threads, each with its own process
// group; fails the test if a rendezvous fails. `configure` may change each
// rank's options (secret, data-plane address) before it meets the others.
inline void RunRanks(int world, const std::function<void(int rank, dist::ProcessGroup& group)>& body,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30),
                     const std::function<void(dist::RendezvousOptions&)>& configure = nullptr) {
  std::promise<std::string> address_promise;
  std::shared_future<std::string> address = address_promise.get_future().share();
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world; ++rank) {
    threads.emplace_back([&, rank] {
      dist::RendezvousOptions options;
      options.rank = rank;
      options.world_size = world;
      options.timeout = timeout;
      options.collective_timeout = timeout;
      options.secret = kTestSecret;
      if (rank == 0) {
        options.address = "127.0.0.1:0";
        options.on_listening = [&](const std::string& bound) { address_promise.set_value(bound); };
      } else {
        if (address.wait_for(timeout) != std::future_status::ready) {
          ADD_FAILURE() << "rank 0 never listened";
          return;
        }
        options.address = address.get();
      }
      if (configure) configure(options);
      absl::StatusOr<dist::ProcessGroup> group = dist::Rendezvous(options);
      if (!group.ok()) {
        ADD_FAILURE() << "rank " << rank << ": " << group.status();
        if (rank == 0) address_promise.set_value("127.0.0.1:1");  // unblock the others
        return;
      }
      body(rank, *group);
    });
  }
  for (std::thread& t : threads) t.join();
}

// What rank 0 saw in AllReduceAfterThePeerLeft.
struct AfterThePeerLeft {
  absl::Status status;  // of the first all-reduce after rank 1 left
  double seconds = 0;   // how long that one took
  absl::Status next;    // of one more all-reduce after it
};

// Two ranks all-reduce once; then rank 1 drops its communicator and store (as
// a dying process does) and rank 0 starts two more all-reduces.
inline AfterThePeerLeft AllReduceAfterThePeerLeft(const std::function<void(dist::RendezvousOptions&)>& configure) {
  AfterThePeerLeft seen;
  std::promise<void> rank1_gone;
  std::shared_future<void> gone = rank1_gone.get_future().share();
  RunRanks(
      2,
      [&](int rank, dist::ProcessGroup& group) {
        torch::Tensor t = torch::ones({1024});
        ASSERT_TRUE(group.communicator->AllReduceSum(t).ok());
        if (rank == 1) {
          group.communicator.reset();
          group.store.reset();
          rank1_gone.set_value();
          return;
        }
        gone.wait();
        const auto start = std::chrono::steady_clock::now();
        seen.status = group.communicator->AllReduceSum(t);
        seen.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        seen.next = group.communicator->AllReduceSum(t);
      },
      std::chrono::seconds(20), configure);
  return seen;
}

}  // namespace dfv::testing

#endif  // DFV_TESTS_DIST_DIST_TEST_UTIL_H_
