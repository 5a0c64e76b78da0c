// Per-job event logs with gap-free sequence numbers, persisted in the
// JobStore, plus in-process subscriptions for live followers (WatchJob).
//
// Sequence numbers: a job's first event is seq 1 and each append takes
// last_seq + 1 in the same transaction that moves the job row's last_seq,
// so a committed log never has gaps or duplicates.
//
// Subscriptions: callbacks run after the append is durable (committed), on
// the appending thread, outside every lock of the log and of the store. When
// two threads append to one job at the same time their callbacks may arrive
// out of seq order; a follower that needs order reads the gap from Read().
//
// Thread-safety: all methods are thread-safe.
#ifndef DFV_SERVER_EVENT_LOG_H_
#define DFV_SERVER_EVENT_LOG_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proto/dfv.pb.h"
#include "server/clock.h"
#include "server/job_store.h"

namespace dfv::server {

class EventLog {
 public:
  // Called with each new event of the subscribed job. Must not block and
  // must not destroy its own Subscription.
  using Callback = std::function<void(const dfv::v1::JobEvent&)>;

  // Owns nothing; `store` and `clock` must outlive the log.
  EventLog(JobStore* store, const Clock* clock);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Ends a subscription when destroyed. Destruction waits for a callback of
  // this subscription that is running on another thread, so after it
  // returns the callback is neither running nor called again.
  class Subscription {
   public:
    ~Subscription();
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

   private:
    friend class EventLog;
    struct Entry;
    Subscription(EventLog* log, std::string job_id, std::shared_ptr<Entry> entry);
    EventLog* log_;
    std::string job_id_;
    std::shared_ptr<Entry> entry_;
  };

  // Appends `payload` (only its payload oneof is used) to the job's log in
  // its own transaction and notifies subscribers. Returns the stored event
  // (job_id, seq, time_ms set). NOT_FOUND when the job does not exist.
  absl::StatusOr<dfv::v1::JobEvent> Append(const std::string& job_id,
                                           const dfv::v1::JobEvent& payload);

  // As Append, inside the caller's transaction, so the event commits with
  // the caller's other rows. Subscribers are NOT notified: after the
  // transaction committed, and after releasing its own locks, the caller
  // passes the returned events to Publish.
  absl::StatusOr<dfv::v1::JobEvent> AppendInTransaction(JobStore::Tx& tx, const std::string& job_id,
                                                        const dfv::v1::JobEvent& payload);

  // Delivers committed events to the subscribers of their jobs.
  void Publish(const std::vector<dfv::v1::JobEvent>& events) ABSL_LOCKS_EXCLUDED(mu_);

  // Up to `limit` events with seq > after_seq, in order (all when 0). An
  // unknown job has no events.
  absl::StatusOr<std::vector<dfv::v1::JobEvent>> Read(const std::string& job_id, int64_t after_seq,
                                                      int limit) const;

  // Calls `callback` for every event of `job_id` published from now on,
  // until the returned handle is destroyed. The handle must not outlive the
  // log.
  std::unique_ptr<Subscription> Subscribe(const std::string& job_id, Callback callback)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Subscriptions open now (each WatchJob stream holds one).
  int64_t SubscriberCount() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Unsubscribe(const std::string& job_id, const Subscription::Entry* entry)
      ABSL_LOCKS_EXCLUDED(mu_);

  JobStore* const store_;
  const Clock* const clock_;
  mutable absl::Mutex mu_;
  std::multimap<std::string, std::shared_ptr<Subscription::Entry>> subscribers_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace dfv::server

#endif  // DFV_SERVER_EVENT_LOG_H_
