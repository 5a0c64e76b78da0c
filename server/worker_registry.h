// Worker sessions: registration, leases renewed by heartbeats, expiry, and
// the assignments each worker holds (which is what occupies its slots).
//
// A worker registers under a name that is unique among live workers; a
// worker that registers again under its name (after a restart, or after its
// lease expired) replaces its old session. Session ids are random, so an id
// from before a coordinator restart is never mistaken for a live one.
//
// Thread-safety: none. The Coordinator owns the registry and calls it under
// its mutex.
#ifndef DFV_SERVER_WORKER_REGISTRY_H_
#define DFV_SERVER_WORKER_REGISTRY_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/assignment_key.h"  // one rank of one attempt, as placed on a worker
#include "proto/dfv.pb.h"
#include "server/clock.h"

namespace dfv::server {

struct WorkerRegistryOptions {
  // A worker that does not heartbeat for this long is lost.
  int64_t lease_ttl_ms = 5000;
  // How often workers are told to heartbeat; well below the TTL so a few
  // late heartbeats do not lose a worker.
  int64_t heartbeat_interval_ms = 500;
  // How long a lost worker stays listed (WORKER_LOST) before it is forgotten.
  int64_t lost_retention_ms = 10 * 60 * 1000;
};

// An assignment that occupies one of a worker's slots until the worker
// reports it complete (or stops reporting it after it was delivered).
struct HeldAssignment {
  dfv::v1::Assignment assignment;  // what the worker is told to run
  bool delivered = false;          // sent in a heartbeat response
  // Held again after a coordinator restart (the worker ran it before):
  // `assignment` names only the rank, so it is never delivered again.
  bool adopted = false;
};

struct WorkerRecord {
  std::string id;        // session id
  std::string name;
  std::string device;
  std::string address;
  std::string metrics_address;  // its /metrics endpoint (HOST:PORT), "" for none
  int slots = 1;
  dfv::v1::WorkerState state = dfv::v1::WORKER_ALIVE;
  int64_t registered_ms = 0;
  int64_t last_heartbeat_ms = 0;
  int64_t lease_expires_ms = 0;
  int64_t lost_ms = 0;   // when the lease expired (WORKER_LOST only)
  // Heartbeats received. Nothing is placed on a worker before its first
  // heartbeat, which reports what it still runs (e.g. trainers from before a
  // reconnect) so those slots are not handed out twice.
  int64_t heartbeats = 0;
  std::map<AssignmentKey, HeldAssignment> assignments;

  int free_slots() const {
    int used = static_cast<int>(assignments.size());
    return used >= slots ? 0 : slots - used;
  }
};

// Worker sessions and the slots of the live ones, for the metrics.
struct WorkerCounts {
  int64_t alive = 0;
  int64_t lost = 0;        // still listed (lost_retention_ms)
  int64_t free_slots = 0;  // of live workers
  int64_t busy_slots = 0;  // of live workers: held by an assignment
};

// A live worker's metrics endpoint, for Prometheus service discovery.
struct MetricsTarget {
  std::string worker;   // its name
  std::string address;  // HOST:PORT
  bool operator==(const MetricsTarget& other) const {
    return worker == other.worker && address == other.address;
  }
};

class WorkerRegistry {
 public:
  // `clock` must outlive the registry.
  WorkerRegistry(const Clock* clock, WorkerRegistryOptions options);

  struct Registration {
    std::string worker_id;
    // The live session this registration replaced (same name), with the
    // assignments it held; the caller ends them. The old session is gone.
    std::optional<WorkerRecord> replaced;
  };
  // Registers a worker (arguments already validated) with a fresh lease.
  Registration Register(const std::string& name, int slots, const std::string& device,
                        const std::string& address, const std::string& metrics_address = "");

  // Renews the lease. NOT_FOUND when the session is unknown or lost (the
  // worker must register again).
  absl::Status Renew(const std::string& worker_id);

  // Marks every worker whose lease ran out as WORKER_LOST and returns them
  // as they were (with their assignments, which the registry then drops:
  // a lost worker holds no slots). Also forgets workers lost longer than
  // lost_retention_ms.
  std::vector<WorkerRecord> ExpireLeases();

  // A live session, or nullptr.
  WorkerRecord* FindAlive(const std::string& worker_id);
  // A live session, or NOT_FOUND ("worker session ID is unknown or its lease
  // expired; register again") telling the worker to register again.
  absl::StatusOr<WorkerRecord*> FindSession(const std::string& worker_id);
  // Any session, live or lost, or nullptr.
  const WorkerRecord* Find(const std::string& worker_id) const;
  std::vector<WorkerRecord*> AliveWorkers();

  // Every known worker, by name, for ListWorkers.
  std::vector<dfv::v1::WorkerInfo> List() const;

  WorkerCounts Count() const;
  // The live workers that reported a metrics address, by name.
  std::vector<MetricsTarget> MetricsTargets() const;

  const WorkerRegistryOptions& options() const { return options_; }

 private:
  std::string NewWorkerId();

  const Clock* const clock_;
  const WorkerRegistryOptions options_;
  std::map<std::string, WorkerRecord> workers_;  // by session id
};

// The host part of the worker's "HOST:PORT" address (its name when it gave
// none): where its ranks are reached, e.g. rank 0's rendezvous.
std::string HostOf(const WorkerRecord& worker);

}  // namespace dfv::server

#endif  // DFV_SERVER_WORKER_REGISTRY_H_
