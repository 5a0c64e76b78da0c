#include "server/event_log.h"

#include <utility>

#include "common/status_macros.h"

namespace dfv::server {

// One subscriber. `call_mu` is held while its callback runs and when the
// subscription ends, which is what lets ~Subscription wait for a callback
// in progress on another thread.
struct EventLog::Subscription::Entry {
  explicit Entry(Callback cb) : callback(std::move(cb)) {}
  absl::Mutex call_mu;
  bool active ABSL_GUARDED_BY(call_mu) = true;
  const Callback callback;
};

EventLog::Subscription::Subscription(EventLog* log, std::string job_id,
                                     std::shared_ptr<Entry> entry)
    : log_(log), job_id_(std::move(job_id)), entry_(std::move(entry)) {}

EventLog::Subscription::~Subscription() {
  log_->Unsubscribe(job_id_, entry_.get());
  absl::MutexLock lock(&entry_->call_mu);
  entry_->active = false;
}

EventLog::EventLog(JobStore* store, const Clock* clock) : store_(store), clock_(clock) {}

EventLog::~EventLog() = default;

absl::StatusOr<dfv::v1::JobEvent> EventLog::AppendInTransaction(JobStore::Tx& tx,
                                                                const std::string& job_id,
                                                                const dfv::v1::JobEvent& payload) {
  DFV_ASSIGN_OR_RETURN(int64_t last_seq, tx.LastSeq(job_id));
  dfv::v1::JobEvent event = payload;
  event.set_job_id(job_id);
  event.set_seq(last_seq + 1);
  event.set_time_ms(clock_->NowMs());
  DFV_RETURN_IF_ERROR(tx.InsertEvent(event));
  return event;
}

absl::StatusOr<dfv::v1::JobEvent> EventLog::Append(const std::string& job_id,
                                                   const dfv::v1::JobEvent& payload) {
  dfv::v1::JobEvent event;
  DFV_RETURN_IF_ERROR(store_->RunInTransaction([&](JobStore::Tx& tx) -> absl::Status {
    DFV_ASSIGN_OR_RETURN(event, AppendInTransaction(tx, job_id, payload));
    return absl::OkStatus();
  }));
  Publish({event});
  return event;
}

void EventLog::Publish(const std::vector<dfv::v1::JobEvent>& events) {
  for (const dfv::v1::JobEvent& event : events) {
    // Copy the subscriber list so callbacks run without mu_: a callback may
    // then subscribe or end other subscriptions freely.
    std::vector<std::shared_ptr<Subscription::Entry>> targets;
    {
      absl::MutexLock lock(&mu_);
      auto range = subscribers_.equal_range(event.job_id());
      for (auto it = range.first; it != range.second; ++it) targets.push_back(it->second);
    }
    for (const auto& entry : targets) {
      absl::MutexLock lock(&entry->call_mu);
      if (entry->active) entry->callback(event);
    }
  }
}

absl::StatusOr<std::vector<dfv::v1::JobEvent>> EventLog::Read(const std::string& job_id,
                                                              int64_t after_seq, int limit) const {
  return store_->ReadEvents(job_id, after_seq, limit);
}

std::unique_ptr<EventLog::Subscription> EventLog::Subscribe(const std::string& job_id,
                                                            Callback callback) {
  auto entry = std::make_shared<Subscription::Entry>(std::move(callback));
  {
    absl::MutexLock lock(&mu_);
    subscribers_.emplace(job_id, entry);
  }
  return std::unique_ptr<Subscription>(new Subscription(this, job_id, std::move(entry)));
}

int64_t EventLog::SubscriberCount() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(subscribers_.size());
}

void EventLog::Unsubscribe(const std::string& job_id, const Subscription::Entry* entry) {
  absl::MutexLock lock(&mu_);
  auto range = subscribers_.equal_range(job_id);
  for (auto it = range.first; it != range.second; ++it) {
    if (it->second.get() == entry) {
      subscribers_.erase(it);
      return;
    }
  }
}

}  // namespace dfv::server
