#pragma once
// The library's one error type lives in the lowest layer, so that arch, rt
// and osl all return the same Error and Result<T>.
#include <airssys/error.hpp>
