// Status propagation macros. Debian's abseil 20220623 ships none, so they live here.
//
//   RETURN_IF_ERROR(DoThing());
//   ASSIGN_OR_RETURN(auto file, OpenFile(path));
//
// Any thread; no state.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RELAY_STATUS_CONCAT_INNER_(a, b) a##b
#define RELAY_STATUS_CONCAT_(a, b) RELAY_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                       \
  do {                                              \
    ::absl::Status relay_status_ = (expr);          \
    if (!relay_status_.ok()) return relay_status_;  \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  RELAY_ASSIGN_OR_RETURN_IMPL_(RELAY_STATUS_CONCAT_(relay_statusor_, __LINE__), lhs, expr)

#define RELAY_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()
