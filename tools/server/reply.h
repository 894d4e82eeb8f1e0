// How a server call ends, in protocol-neutral terms: an HTTP status (the KServe REST
// mapping) and a message; the gRPC frontend maps the same codes to gRPC status codes.
#pragma once

#include <string>
#include <utility>

#include "kiln/status.h"

namespace kiln::server {

enum class ReplyCode : int {
  kOk = 200,
  kBadRequest = 400,        // the request is wrong (INVALID_ARGUMENT)
  kNotFound = 404,          // no such model / version / route (NOT_FOUND)
  kPayloadTooLarge = 413,   // body over the limit (INVALID_ARGUMENT)
  kCancelled = 499,         // the client went away before its request ran (CANCELLED)
  kInternal = 500,          // a kiln bug or a failed run (INTERNAL)
  kUnavailable = 503,       // queue full, model loading, server draining (UNAVAILABLE): retry
  kTimeout = 504,           // the request's deadline passed before it ran (DEADLINE_EXCEEDED)
};

struct Reply {
  ReplyCode code = ReplyCode::kOk;
  std::string message;
  bool ok() const { return code == ReplyCode::kOk; }
  static Reply Ok() { return {}; }
  static Reply Error(ReplyCode c, std::string m) { return {c, std::move(m)}; }
  // A kiln Status from the engine: bad input is the client's fault, the rest is ours.
  static Reply FromStatus(const Status& s) {
    if (s.ok()) return {};
    switch (s.code()) {
      case StatusCode::kInvalidArgument:
      case StatusCode::kOutOfRange:
      case StatusCode::kUnimplemented: return {ReplyCode::kBadRequest, s.message()};
      case StatusCode::kNotFound: return {ReplyCode::kNotFound, s.message()};
      default: return {ReplyCode::kInternal, s.ToString()};
    }
  }
};

}  // namespace kiln::server
