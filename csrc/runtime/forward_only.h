// lstm_inference runs its layers under ForwardOnlyGuard: nothing will run backward, so a layer
// kernel may leave unwritten the tensors it returns only for backward (the activated gates and
// the cell states), which are then uninitialised. Writing them is a quarter of a float32 forward
// step's memory traffic, which is the step's bottleneck once the GEMM is done.
#pragma once

namespace lstm_ext {

class ForwardOnlyGuard {
 public:
  ForwardOnlyGuard() : previous_(active_) { active_ = true; }
  ~ForwardOnlyGuard() { active_ = previous_; }
  ForwardOnlyGuard(const ForwardOnlyGuard&) = delete;
  ForwardOnlyGuard& operator=(const ForwardOnlyGuard&) = delete;

  // Whether this thread is inside a guard: read it on the thread that called the kernel.
  static bool active() { return active_; }

 private:
  inline static thread_local bool active_ = false;
  bool previous_;
};

}  // namespace lstm_ext
