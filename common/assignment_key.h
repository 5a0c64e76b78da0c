// How the coordinator and the worker daemons name an assignment: one rank of
// one attempt of a job (the fields every worker-facing request about an
// assignment carries, e.g. v1::RunningAssignment).
#ifndef DFV_COMMON_ASSIGNMENT_KEY_H_
#define DFV_COMMON_ASSIGNMENT_KEY_H_

#include <cstdint>
#include <string>
#include <tuple>

namespace dfv {

struct AssignmentKey {
  std::string job_id;
  int32_t attempt = 0;
  int32_t rank = 0;

  bool operator<(const AssignmentKey& other) const {
    return std::tie(job_id, attempt, rank) < std::tie(other.job_id, other.attempt, other.rank);
  }
  bool operator==(const AssignmentKey& other) const {
    return job_id == other.job_id && attempt == other.attempt && rank == other.rank;
  }
};

}  // namespace dfv

#endif  // DFV_COMMON_ASSIGNMENT_KEY_H_
