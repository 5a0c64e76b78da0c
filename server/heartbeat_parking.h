// Long-polled heartbeats: a Heartbeat that has nothing to deliver waits here,
// up to the wait the worker asked for (HeartbeatRequest.wait_ms), and is
// answered as soon as the coordinator has an assignment for its worker. So a
// job placed on an idle worker reaches it at once instead of at the worker's
// next beat (up to heartbeat_interval_ms later).
//
// Each parked call is an `Answer`: it runs the heartbeat again (renewing the
// lease, taking what is deliverable) and finishes the RPC when it has
// something to send or when `final` is set; it returns whether it finished.
// Answers run on the parking's own thread, never on a gRPC thread, never
// under the parking's lock.
//
// Thread-safe. Stop (and the destructor) answers every parked call (final)
// and joins; later calls to Park are answered at once.
#ifndef DFV_SERVER_HEARTBEAT_PARKING_H_
#define DFV_SERVER_HEARTBEAT_PARKING_H_

#include <functional>
#include <list>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace dfv::server {

class HeartbeatParking {
 public:
  // Runs the parked heartbeat again; finishes the call when it has something
  // to deliver or `final`. Returns whether the call was finished.
  using Answer = std::function<bool(bool final)>;

  HeartbeatParking();
  ~HeartbeatParking();  // Stop()
  // Answers every parked call now (final) and stops the thread; idempotent.
  // Before the gRPC server shuts down, so it waits for no parked call.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  HeartbeatParking(const HeartbeatParking&) = delete;
  HeartbeatParking& operator=(const HeartbeatParking&) = delete;

  // Parks a call of worker `worker_id` until `deadline` (then answered with
  // final = true) or until Wake names the worker (answered with final =
  // false, and parked again if it did not finish). During and after the
  // Stop, answers at once (final) on the calling thread.
  void Park(const std::string& worker_id, absl::Time deadline, Answer answer) ABSL_LOCKS_EXCLUDED(mu_);

  // The coordinator has something new to deliver to these workers: their
  // parked calls, and one parked within a second after, are answered soon.
  // Cheap; callable from any thread that holds no lock the answers take.
  void Wake(const std::vector<std::string>& worker_ids) ABSL_LOCKS_EXCLUDED(mu_);

  // Calls parked now (for tests).
  size_t parked() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Parked {
    std::string worker_id;
    absl::Time deadline;
    Answer answer;
  };
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::list<Parked> parked_ ABSL_GUARDED_BY(mu_);
  // Workers woken, and when. Kept a while when no call of theirs is parked:
  // a heartbeat that found nothing and is about to park (or is being
  // answered) must still see a wake that came meanwhile.
  std::map<std::string, absl::Time> woken_ ABSL_GUARDED_BY(mu_);
  bool kick_ ABSL_GUARDED_BY(mu_) = false;  // Park or Wake since the loop last looked
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace dfv::server

#endif  // DFV_SERVER_HEARTBEAT_PARKING_H_
