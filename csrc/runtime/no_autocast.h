// The one autocast rule of every op family: each kernel registered for a backend key (CPU,
// CUDA) runs its body under NoAutocast, whether through the cell families' op template
// (runtime/layer_ops.h) or through WithoutAutocast<> around a plain kernel function (the variants).
//
// Why: the kernels' own ATen calls (at::addmm, at::linear, oneDNN's linear, ...) must run in the
// dtypes the op was given. Inside an autocast region the autocast keys are still live in the
// thread-local dispatch state when a kernel runs, so a functional ATen call would be cast to the
// autocast dtype under the kernel's feet, and the raw-pointer passes after it would read a
// buffer of another dtype than they were compiled for. Autocasting, where wanted, happens
// before the op is called (in Python), never inside a kernel.
#pragma once

#include <c10/core/impl/LocalDispatchKeySet.h>

#include <utility>

namespace lstm_ext {

struct NoAutocast {
  c10::impl::ExcludeDispatchKeyGuard guard{c10::autocast_dispatch_keyset};
};

// A plain kernel function run under NoAutocast, for ops registered without a wrapper template:
// m.impl("name", &WithoutAutocast<&kernel>::call).
template <auto Kernel>
struct WithoutAutocast;

template <typename Result, typename... Args, Result (*Kernel)(Args...)>
struct WithoutAutocast<Kernel> {
  static Result call(Args... args) {
    const NoAutocast no_autocast;
    return Kernel(std::forward<Args>(args)...);
  }
};

}  // namespace lstm_ext
