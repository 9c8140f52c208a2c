// A team of threads that walks one layer's time loop together. Each member owns a slice of the
// hidden units for the whole loop: it runs the recurrent GEMM for its slice's gate columns and
// then the gate math of those units, and the members meet once per step.
//
// Why: the plain loop pays two fork/joins per step (oneDNN's GEMM, then the pointwise pass),
// plus oneDNN's binary-add post-op; with a team, a second thread speeds the forward up instead
// of slowing it down.
#pragma once

#include <ATen/Config.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>

#include "runtime/cpu/switches.h"
#include "runtime/layer_checks.h"

namespace lstm_ext {
namespace cpu {

// Members arrive with the number of unit slices they own and wait until every slice has
// arrived. Counting slices, not threads, keeps it right however at::parallel_for spreads the
// slices (one thread may own several, or all of them when called from a parallel region).
class StepBarrier {
 public:
  explicit StepBarrier(int64_t slices) : slices_(slices) {}

  // Runs one step's work unless the team has failed, then waits for the others. Returns false
  // once any member has failed; every member then sees it at the same step and stops, so no
  // member is left waiting for one that has left.
  template <typename Work>
  bool step(int64_t owned, int64_t& generation, Work&& work) {
    if (!failed_.load(std::memory_order_relaxed)) {
      try {
        work();
      } catch (...) {
        fail(std::current_exception());
      }
    }
    const int64_t target = slices_ * ++generation;
    arrived_.fetch_add(owned, std::memory_order_acq_rel);
    for (int spins = 0; arrived_.load(std::memory_order_acquire) < target; ++spins) {
      if (spins > 2000) std::this_thread::yield();  // an oversubscribed machine: give the core away
    }
    return !failed_.load(std::memory_order_acquire);
  }

  // Work outside the steps (setting up a member); a failure here stops the team at its first step.
  template <typename Work>
  void guard(Work&& work) {
    try {
      work();
    } catch (...) {
      fail(std::current_exception());
    }
  }

  void rethrow_if_failed() {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void fail(std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = e;
    failed_.store(true, std::memory_order_release);
  }

  const int64_t slices_;
  std::atomic<int64_t> arrived_{0};
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::exception_ptr error_;
};

// The team needs every slice's member running at once, which at::parallel_for guarantees on
// OpenMP (each thread calls the body once) but not on the native thread pool.
inline constexpr bool kTeamAvailable = AT_PARALLEL_OPENMP;

// Hidden units per team slice come in whole AVX-512 float vectors.
inline constexpr int64_t kTeamAlign = 16;
// Below this many flops per step the plain loop wins (the small-rows GEMM, no meeting per step).
inline constexpr int64_t kTeamMinFlops = 2 << 20;

// Whether a layer's time loop (`gates` gate blocks per unit) runs as a team: several threads, no
// projection (its GEMM would need a second meeting per step), more rows than the small-rows GEMM
// takes, big enough steps. LSTM_EXT_TEAM=0 keeps the plain loop, to compare the two.
inline bool team_applies(const LayerShape& s, int64_t gates) {
  // Read on every call (it is cheap), so that a benchmark can alternate the two in one process.
  if (!switch_on("LSTM_EXT_TEAM") || !kTeamAvailable || s.has_proj || at::get_num_threads() < 2 || at::in_parallel_region()) return false;
  return s.B > 4 && s.H >= 2 * kTeamAlign && 2 * s.B * gates * s.H * s.H >= kTeamMinFlops;
}

// Hidden units per slice: an equal share per thread, whole SIMD vectors of `align` units.
inline int64_t team_slice_units(int64_t H, int64_t align) {
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t share = (H + threads - 1) / threads;
  return std::max<int64_t>(align, (share + align - 1) / align * align);
}

// Runs member(unit_begin, unit_end, owned_slices, barrier) once per thread of the team, with the
// caller's thread-local state (grad mode, inference mode, dispatch exclusions) on every thread.
template <typename Member>
void run_team(int64_t H, int64_t align, Member&& member) {
  const int64_t units = team_slice_units(H, align);
  const int64_t slices = (H + units - 1) / units;
  StepBarrier barrier(slices);
  const at::ThreadLocalState state;
  at::parallel_for(0, slices, 1, [&](int64_t begin, int64_t end) {
    at::ThreadLocalStateGuard guard(state);
    member(begin * units, std::min(H, end * units), end - begin, barrier);
  });
  barrier.rethrow_if_failed();
}

// The rows of w [gates * H, K] that feed units [u0, u0 + units) in every gate block, as one
// contiguous [gates * units, K] weight: a member's share of a recurrent GEMM.
inline at::Tensor unit_rows(const at::Tensor& w, int64_t gates, int64_t u0, int64_t units) {
  const int64_t H = w.size(0) / gates;
  return w.reshape({gates, H, w.size(1)}).narrow(1, u0, units).reshape({gates * units, w.size(1)});
}

// Rows n.. of a member's units keep their h into the next step's buffer: finished sequences, and
// on a reversed packed walk sequences that have not started yet.
inline void carry_rows(const at::Tensor& from, const at::Tensor& to, int64_t n, int64_t u0, int64_t units) {
  const int64_t rest = from.size(0) - n;
  if (rest > 0) to.narrow(0, n, rest).narrow(1, u0, units).copy_(from.narrow(0, n, rest).narrow(1, u0, units));
}

// How many steps have rows: every walked step swaps a team's two h buffers once.
inline int64_t walked_steps(const LayerShape& s) {
  int64_t steps = 0;
  for (int64_t t = 0; t < s.T; ++t) steps += s.rows[t] > 0;
  return steps;
}

}  // namespace cpu
}  // namespace lstm_ext
