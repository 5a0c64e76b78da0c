#include "server/worker_registry.h"

#include <algorithm>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/rpc/rpc.h"
#include "common/status_macros.h"

namespace dfv::server {

WorkerRegistry::WorkerRegistry(const Clock* clock, WorkerRegistryOptions options)
    : clock_(clock), options_(options) {}

std::string WorkerRegistry::NewWorkerId() {
  // Random rather than counted: ids must not repeat across coordinator
  // restarts, and the registry is not persisted.
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  while (true) {
    std::string id = absl::StrFormat("w-%016x", rng());
    if (workers_.count(id) == 0) return id;
  }
}

WorkerRegistry::Registration WorkerRegistry::Register(const std::string& name, int slots,
                                                      const std::string& device,
                                                      const std::string& address,
                                                      const std::string& metrics_address) {
  Registration result;
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->second.name != name) {
      ++it;
      continue;
    }
    if (it->second.state == dfv::v1::WORKER_ALIVE) result.replaced = std::move(it->second);
    it = workers_.erase(it);
  }
  const int64_t now = clock_->NowMs();
  WorkerRecord record;
  record.id = NewWorkerId();
  record.name = name;
  record.device = device;
  record.address = address;
  record.metrics_address = metrics_address;
  record.slots = slots;
  record.registered_ms = now;
  record.last_heartbeat_ms = now;
  record.lease_expires_ms = now + options_.lease_ttl_ms;
  result.worker_id = record.id;
  workers_.emplace(record.id, std::move(record));
  return result;
}

absl::StatusOr<WorkerRecord*> WorkerRegistry::FindSession(const std::string& worker_id) {
  WorkerRecord* worker = FindAlive(worker_id);
  if (worker == nullptr) {
    return absl::NotFoundError(absl::StrCat("worker session ", worker_id,
                                            " is unknown or its lease expired; register again"));
  }
  return worker;
}

absl::Status WorkerRegistry::Renew(const std::string& worker_id) {
  DFV_ASSIGN_OR_RETURN(WorkerRecord * worker, FindSession(worker_id));
  const int64_t now = clock_->NowMs();
  worker->last_heartbeat_ms = now;
  worker->lease_expires_ms = now + options_.lease_ttl_ms;
  ++worker->heartbeats;
  return absl::OkStatus();
}

std::vector<WorkerRecord> WorkerRegistry::ExpireLeases() {
  const int64_t now = clock_->NowMs();
  std::vector<WorkerRecord> lost;
  for (auto it = workers_.begin(); it != workers_.end();) {
    WorkerRecord& worker = it->second;
    if (worker.state == dfv::v1::WORKER_LOST) {
      if (now - worker.lost_ms > options_.lost_retention_ms) {
        it = workers_.erase(it);
        continue;
      }
    } else if (now >= worker.lease_expires_ms) {
      lost.push_back(worker);
      worker.state = dfv::v1::WORKER_LOST;
      worker.lost_ms = now;
      worker.assignments.clear();
    }
    ++it;
  }
  return lost;
}

WorkerRecord* WorkerRegistry::FindAlive(const std::string& worker_id) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end() || it->second.state != dfv::v1::WORKER_ALIVE) return nullptr;
  return &it->second;
}

const WorkerRecord* WorkerRegistry::Find(const std::string& worker_id) const {
  auto it = workers_.find(worker_id);
  return it == workers_.end() ? nullptr : &it->second;
}

std::vector<WorkerRecord*> WorkerRegistry::AliveWorkers() {
  std::vector<WorkerRecord*> alive;
  for (auto& [id, worker] : workers_) {
    if (worker.state == dfv::v1::WORKER_ALIVE) alive.push_back(&worker);
  }
  return alive;
}

std::vector<dfv::v1::WorkerInfo> WorkerRegistry::List() const {
  std::vector<dfv::v1::WorkerInfo> infos;
  for (const auto& [id, worker] : workers_) {
    dfv::v1::WorkerInfo info;
    info.set_id(worker.id);
    info.set_name(worker.name);
    info.set_device(worker.device);
    info.set_slots(worker.slots);
    info.set_free_slots(worker.state == dfv::v1::WORKER_ALIVE ? worker.free_slots() : 0);
    info.set_state(worker.state);
    info.set_address(worker.address);
    info.set_last_heartbeat_ms(worker.last_heartbeat_ms);
    std::set<std::string> jobs;
    for (const auto& [key, held] : worker.assignments) jobs.insert(key.job_id);
    for (const std::string& job : jobs) info.add_job_ids(job);
    infos.push_back(std::move(info));
  }
  std::sort(infos.begin(), infos.end(),
            [](const dfv::v1::WorkerInfo& a, const dfv::v1::WorkerInfo& b) {
              return std::tie(a.name(), a.id()) < std::tie(b.name(), b.id());
            });
  return infos;
}

WorkerCounts WorkerRegistry::Count() const {
  WorkerCounts counts;
  for (const auto& [id, worker] : workers_) {
    if (worker.state != dfv::v1::WORKER_ALIVE) {
      ++counts.lost;
      continue;
    }
    ++counts.alive;
    counts.free_slots += worker.free_slots();
    counts.busy_slots += worker.slots - worker.free_slots();
  }
  return counts;
}

std::vector<MetricsTarget> WorkerRegistry::MetricsTargets() const {
  std::vector<MetricsTarget> targets;
  for (const auto& [id, worker] : workers_) {
    if (worker.state == dfv::v1::WORKER_ALIVE && !worker.metrics_address.empty()) {
      targets.push_back(MetricsTarget{worker.name, worker.metrics_address});
    }
  }
  // Names are unique among live workers.
  std::sort(targets.begin(), targets.end(),
            [](const MetricsTarget& a, const MetricsTarget& b) { return a.worker < b.worker; });
  return targets;
}

std::string HostOf(const WorkerRecord& worker) {
  if (worker.address.empty()) return worker.name;
  absl::StatusOr<rpc::HostPort> parsed = rpc::ParseHostPort(worker.address, "address");
  return parsed.ok() ? parsed->host : worker.name;
}

}  // namespace dfv::server
