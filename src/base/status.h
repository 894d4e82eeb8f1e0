// Internal error helpers on top of the public Status.
#pragma once

#include <charconv>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "kiln/status.h"

namespace kiln {

namespace strcat_internal {
// Appends one piece as `std::ostream << x` would print it. Strings, characters and
// integers are appended directly (constructing an ostringstream costs a locale setup,
// ~1 us: StrCat runs per node in the importer and the passes); anything else goes
// through operator<<.
inline void Append(std::string& s, const std::string& x) { s += x; }
inline void Append(std::string& s, std::string_view x) { s += x; }
inline void Append(std::string& s, const char* x) { s += x; }
inline void Append(std::string& s, char x) { s += x; }
template <typename T>
void Append(std::string& s, const T& x) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool> && sizeof(T) > 1) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, x);
    s.append(buf, r.ptr);
  } else {
    std::ostringstream os;
    os << x;
    s += os.str();
  }
}
}  // namespace strcat_internal

// Concatenates anything that has operator<< into a string (printed as operator<< does).
template <typename... Args>
std::string StrCat(const Args&... args) {
  std::string s;
  (strcat_internal::Append(s, args), ...);
  return s;
}

template <typename... Args>
Status InvalidArgument(const Args&... args) {
  return Status(StatusCode::kInvalidArgument, StrCat(args...));
}
template <typename... Args>
Status Unimplemented(const Args&... args) {
  return Status(StatusCode::kUnimplemented, StrCat(args...));
}
template <typename... Args>
Status NotFound(const Args&... args) {
  return Status(StatusCode::kNotFound, StrCat(args...));
}
template <typename... Args>
Status OutOfRange(const Args&... args) {
  return Status(StatusCode::kOutOfRange, StrCat(args...));
}
template <typename... Args>
Status Internal(const Args&... args) {
  return Status(StatusCode::kInternal, StrCat(args...));
}
template <typename... Args>
Status IoError(const Args&... args) {
  return Status(StatusCode::kIoError, StrCat(args...));
}
template <typename... Args>
Status FailedPrecondition(const Args&... args) {
  return Status(StatusCode::kFailedPrecondition, StrCat(args...));
}

}  // namespace kiln

#define KILN_CONCAT_INNER_(a, b) a##b
#define KILN_CONCAT_(a, b) KILN_CONCAT_INNER_(a, b)

// Returns the Status of `expr` from the enclosing function if it is not OK.
#define KILN_RETURN_IF_ERROR(expr)                 \
  do {                                             \
    ::kiln::Status kiln_status_ = (expr);          \
    if (!kiln_status_.ok()) return kiln_status_;   \
  } while (0)

// `lhs = value of expr` or return its error. lhs may be a declaration: `auto x` (so it
// cannot be parenthesized).
// NOLINTBEGIN(bugprone-macro-parentheses)
#define KILN_ASSIGN_OR_RETURN(lhs, expr) \
  KILN_ASSIGN_OR_RETURN_IMPL_(KILN_CONCAT_(kiln_statusor_, __LINE__), lhs, expr)
#define KILN_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

// Inside a lambda returning void: on error, store the Status in `st` and return.
#define KILN_ASSIGN_OR_RETURN_VOID_(lhs, expr, st)        \
  auto KILN_CONCAT_(kiln_sv_, __LINE__) = (expr);         \
  if (!KILN_CONCAT_(kiln_sv_, __LINE__).ok()) {           \
    st = KILN_CONCAT_(kiln_sv_, __LINE__).status();       \
    return;                                               \
  }                                                       \
  lhs = std::move(KILN_CONCAT_(kiln_sv_, __LINE__)).value()
// NOLINTEND(bugprone-macro-parentheses)
