#include "kiln/status.h"

#include <cstdio>
#include <cstdlib>

namespace kiln {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "InvalidArgument";
    case StatusCode::kNotFound: return "NotFound";
    case StatusCode::kUnimplemented: return "Unimplemented";
    case StatusCode::kOutOfRange: return "OutOfRange";
    case StatusCode::kFailedPrecondition: return "FailedPrecondition";
    case StatusCode::kIoError: return "IoError";
    case StatusCode::kInternal: return "Internal";
  }
  return "Unknown";
}

Status::Status(StatusCode code, std::string message) {
  if (code != StatusCode::kOk) state_ = std::make_unique<State>(State{code, std::move(message)});
}

Status::Status(const Status& other)
    : state_(other.state_ ? std::make_unique<State>(*other.state_) : nullptr) {}

Status& Status::operator=(const Status& other) {
  if (this != &other) state_ = other.state_ ? std::make_unique<State>(*other.state_) : nullptr;
  return *this;
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return state_ ? state_->message : kEmpty;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(StatusCodeName(state_->code)) + ": " + state_->message;
}

Status Status::WithPrefix(const std::string& prefix) const {
  if (ok()) return Status();
  // Idempotent: a message that already starts with this prefix keeps it once ("memory plan:
  // memory plan: ..." helps nobody).
  const std::string head = prefix + ": ";
  if (state_->message.compare(0, head.size(), head) == 0) return *this;
  return Status(state_->code, head + state_->message);
}

namespace internal {
void DieOnErrorValue(const Status& status) {
  std::fprintf(stderr, "kiln: StatusOr::value() called on an error: %s\n", status.ToString().c_str());
  std::abort();
}
}  // namespace internal

}  // namespace kiln
