// A team of threads that walks one layer's time loop together. Each member owns a slice of the
// hidden units for the whole loop: it runs the recurrent GEMM for its slice's gate columns and
// then the gate math of those units, and the members meet once per step.
//
// Why: the plain loop pays two fork/joins per step (oneDNN's GEMM, then the pointwise pass),
// and oneDNN's binary-add post-op cost 4 of 21 ms on 100 steps of 64x256x1024 here. With 2
// threads that put lstm_ext's forward at 0.76-0.79x nn.LSTM's, against 0.80-0.84x on 1 thread.
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

}  // namespace cpu
}  // namespace lstm_ext
