// Time as the coordinator sees it. Leases, cancel grace periods and event
// timestamps all read a Clock, so tests drive time with FakeClock instead of
// sleeping.
#ifndef DFV_SERVER_CLOCK_H_
#define DFV_SERVER_CLOCK_H_

#include <atomic>
#include <cstdint>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace dfv::server {

// Milliseconds since the Unix epoch. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMs() const = 0;
};

// The wall clock.
class RealClock : public Clock {
 public:
  int64_t NowMs() const override { return absl::ToUnixMillis(absl::Now()); }

  // A process-wide instance (stateless, never destroyed).
  static RealClock* Get() {
    static RealClock* const clock = new RealClock();
    return clock;
  }
};

// A clock that moves only when told to. Thread-safe.
class FakeClock : public Clock {
 public:
  // The default start is a fixed, realistic epoch time (2023-11-14).
  explicit FakeClock(int64_t start_ms = 1700000000000) : now_ms_(start_ms) {}

  int64_t NowMs() const override { return now_ms_.load(std::memory_order_acquire); }
  void AdvanceMs(int64_t delta_ms) { now_ms_.fetch_add(delta_ms, std::memory_order_acq_rel); }
  void SetMs(int64_t now_ms) { now_ms_.store(now_ms, std::memory_order_release); }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace dfv::server

#endif  // DFV_SERVER_CLOCK_H_
