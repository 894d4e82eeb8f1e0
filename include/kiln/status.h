// kiln public API: error values.
//
// Every fallible kiln call returns a Status (or StatusOr<T>). The OK path holds no
// allocation; an error carries a code and a message that names the file, node, op,
// tensor or field at fault. Exceptions never cross the public API.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <variant>

namespace kiln {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 1,   // bad user input: model, tensor, option
  kNotFound = 2,          // a named thing does not exist
  kUnimplemented = 3,     // valid input that kiln does not support (yet)
  kOutOfRange = 4,        // index/size outside its bounds
  kFailedPrecondition = 5,
  kIoError = 6,           // file system
  kInternal = 7,          // a kiln bug
};

// Name of a code, e.g. "InvalidArgument".
const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message);
  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status OK() { return Status(); }

  bool ok() const { return state_ == nullptr; }
  StatusCode code() const { return state_ ? state_->code : StatusCode::kOk; }
  // Empty for OK.
  const std::string& message() const;
  // "InvalidArgument: <message>" or "OK".
  std::string ToString() const;
  // Returns a copy whose message is "<prefix>: <message>" (no-op on OK).
  Status WithPrefix(const std::string& prefix) const;

 private:
  struct State {
    StatusCode code;
    std::string message;
  };
  std::unique_ptr<State> state_;
};

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status) : v_(status) {}           // NOLINT: implicit by design
  StatusOr(Status&& status) : v_(std::move(status)) {}     // NOLINT
  StatusOr(const T& value) : v_(value) {}                  // NOLINT
  StatusOr(T&& value) : v_(std::move(value)) {}            // NOLINT

  bool ok() const { return v_.index() == 1; }
  Status status() const { return ok() ? Status() : std::get<0>(v_); }
  T& value() & { return std::get<1>(v_); }
  const T& value() const& { return std::get<1>(v_); }
  T&& value() && { return std::get<1>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace kiln
