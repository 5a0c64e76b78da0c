#include "server/heartbeat_parking.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/time/clock.h"

namespace dfv::server {

HeartbeatParking::HeartbeatParking() : thread_([this] { Loop(); }) {}

HeartbeatParking::~HeartbeatParking() { Stop(); }

void HeartbeatParking::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void HeartbeatParking::Park(const std::string& worker_id, absl::Time deadline, Answer answer) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      parked_.push_back(Parked{worker_id, deadline, std::move(answer)});
      kick_ = true;  // a new deadline, or a wake already waiting for it
      return;
    }
  }
  answer(/*final=*/true);
}

void HeartbeatParking::Wake(const std::vector<std::string>& worker_ids) {
  if (worker_ids.empty()) return;
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  for (const std::string& id : worker_ids) woken_[id] = now;
  kick_ = true;
}

size_t HeartbeatParking::parked() const {
  absl::MutexLock lock(&mu_);
  return parked_.size();
}

void HeartbeatParking::Loop() {
  // Longer than any gap between a heartbeat finding nothing and parking.
  constexpr absl::Duration kWakeKept = absl::Seconds(1);
  for (;;) {
    // The calls to answer now, taken out of the list so that they run
    // without the lock (an answer takes the coordinator's).
    std::vector<std::pair<Parked, bool>> due;  // and whether final
    {
      absl::MutexLock lock(&mu_);
      absl::Time next = absl::InfiniteFuture();
      for (const Parked& p : parked_) next = std::min(next, p.deadline);
      auto kicked = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || kick_; };
      mu_.AwaitWithDeadline(absl::Condition(&kicked), next);
      kick_ = false;
      const absl::Time now = absl::Now();
      for (auto it = parked_.begin(); it != parked_.end();) {
        const bool final = stopping_ || it->deadline <= now;
        const bool woken = woken_.erase(it->worker_id) > 0;
        if (final || woken) {
          due.emplace_back(std::move(*it), final);
          it = parked_.erase(it);
        } else {
          ++it;
        }
      }
      for (auto it = woken_.begin(); it != woken_.end();) {
        it = now - it->second > kWakeKept ? woken_.erase(it) : std::next(it);
      }
      if (stopping_ && parked_.empty() && due.empty()) return;
    }
    std::vector<Parked> again;
    for (auto& [call, final] : due) {
      if (!call.answer(final)) again.push_back(std::move(call));
    }
    if (!again.empty()) {
      absl::MutexLock lock(&mu_);
      for (Parked& call : again) parked_.push_back(std::move(call));
    }
  }
}

}  // namespace dfv::server
