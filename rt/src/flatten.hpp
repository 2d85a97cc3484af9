#pragma once
// The answer of a blocking ask whose reply is itself a Result: the ask's
// error (timeout, a dead actor), or the reply. Private to rt/src.

#include <airssys/error.hpp>

#include <utility>

namespace airssys::detail {

template <class T>
Result<T> flatten(Result<Result<T>>&& r) {
  if (!r) return r.error();
  return std::move(r).value();
}

inline Result<void> flatten(Result<Result<void>>&& r) {
  if (!r) return r.error();
  return *r;
}

}  // namespace airssys::detail
