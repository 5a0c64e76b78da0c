// A small fixed pool of threads for blocking file work (artifact writes,
// fsync, reads) that must stay off gRPC's callback threads.
//
// Thread-safety: Post may be called from any thread. Tasks run in FIFO
// order per pool (not per caller) and must not throw.
#ifndef DFV_SERVER_IO_EXECUTOR_H_
#define DFV_SERVER_IO_EXECUTOR_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace dfv::server {

class IoExecutor {
 public:
  explicit IoExecutor(int threads);
  // Runs every task already posted, then joins the threads.
  ~IoExecutor();
  IoExecutor(const IoExecutor&) = delete;
  IoExecutor& operator=(const IoExecutor&) = delete;

  // Queues `task`. After destruction has begun, tasks still run (the
  // destructor drains the queue).
  void Post(std::function<void()> task) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  bool ReadyLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace dfv::server

#endif  // DFV_SERVER_IO_EXECUTOR_H_
