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

// Marks what the shared libraries export (they are built with -fvisibility=hidden): the
// public API is exactly what carries KILN_API (tests/install checks the symbol lists).
#if defined(__GNUC__) || defined(__clang__)
#define KILN_API [[gnu::visibility("default")]]
#else
#define KILN_API
#endif

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
KILN_API const char* StatusCodeName(StatusCode code);

class [[nodiscard]] KILN_API Status {
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

namespace internal {
// Prints the status to stderr and aborts: what value() (and * and ->) on an error does.
[[noreturn]] KILN_API void DieOnErrorValue(const Status& status);
}  // namespace internal

// Either a value or a non-OK Status. Check ok() before reading the value: value() on an
// error prints the error and aborts the process (it never throws).
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status) : v_(status) {}           // NOLINT: implicit by design
  StatusOr(Status&& status) : v_(std::move(status)) {}     // NOLINT
  StatusOr(const T& value) : v_(value) {}                  // NOLINT
  StatusOr(T&& value) : v_(std::move(value)) {}            // NOLINT

  bool ok() const { return v_.index() == 1; }
  Status status() const { return ok() ? Status() : std::get<0>(v_); }
  T& value() & {
    if (!ok()) internal::DieOnErrorValue(std::get<0>(v_));
    return *std::get_if<1>(&v_);
  }
  const T& value() const& {
    if (!ok()) internal::DieOnErrorValue(std::get<0>(v_));
    return *std::get_if<1>(&v_);
  }
  T&& value() && {
    if (!ok()) internal::DieOnErrorValue(std::get<0>(v_));
    return std::move(*std::get_if<1>(&v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace kiln
