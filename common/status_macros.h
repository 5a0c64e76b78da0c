// Status propagation helpers. Debian's Abseil (20220623) has no public status
// macros, so dfv keeps this one short pair.
#ifndef DFV_COMMON_STATUS_MACROS_H_
#define DFV_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DFV_STATUS_CONCAT_INNER_(a, b) a##b
#define DFV_STATUS_CONCAT_(a, b) DFV_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) and returns it from the enclosing
// function when it is not OK.
#define DFV_RETURN_IF_ERROR(expr)                  \
  do {                                             \
    ::absl::Status dfv_status_ = (expr);           \
    if (!dfv_status_.ok()) return dfv_status_;     \
  } while (false)

// DFV_ASSIGN_OR_RETURN(lhs, expr): evaluates `expr` (an absl::StatusOr<T>);
// on error returns its status, otherwise moves the value into `lhs`, which
// may be a declaration (`auto x`) or an existing variable.
#define DFV_ASSIGN_OR_RETURN(lhs, expr) \
  DFV_ASSIGN_OR_RETURN_IMPL_(DFV_STATUS_CONCAT_(dfv_statusor_, __LINE__), lhs, expr)
#define DFV_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                               \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // DFV_COMMON_STATUS_MACROS_H_
