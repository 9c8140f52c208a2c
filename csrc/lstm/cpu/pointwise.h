// The LSTM's fused pointwise passes of one time step, on a range of rows. Compiled once per CPU
// capability (pointwise_impl.h, by pointwise_*.cpp) and picked at run time, as ATen picks its
// kernels (runtime/cpu/capability.h).
#pragma once

#include <ATen/OpMathType.h>

#include <algorithm>
#include <cstdint>

#include "runtime/cpu/capability.h"
#include "runtime/cpu/grain.h"

namespace lstm_ext {
namespace cpu {

// Forward: pre [rows, 4H] pre-activations (i, f, g, o blocks) -> activated gates, cells and
// the carried cell state; h to h_out (and to out, when not null).
template <typename scalar_t>
struct ForwardStep {
  using opmath_t = at::opmath_type<scalar_t>;
  int64_t H;
  const scalar_t* pre;
  opmath_t* gates;  // may equal pre: each unit reads before it writes; null: neither gates nor cells saved
  opmath_t* cells;
  opmath_t* c_state;
  scalar_t* h_out;
  scalar_t* out;  // null with a projection
  // A team member (step_team.h) adds its own recurrent product here: [rows, 4 * units] in
  // (i, f, g, o) blocks, one column per unit of [unit_begin, unit_end).
  const scalar_t* rec = nullptr;
  int64_t unit_begin = 0;
  int64_t unit_end = -1;  // -1: every unit, H
};

// Backward: gradient of h (dh, plus dy unless null) and of c (dc, updated in place to the
// gradient of c_prev) -> gradients of the four pre-activations; m = o * tanh(c) when not null.
template <typename scalar_t>
struct BackwardStep {
  using opmath_t = at::opmath_type<scalar_t>;
  int64_t H;
  const opmath_t* gates;
  const opmath_t* cells;
  const opmath_t* c_prev;  // rows below n_prev
  const opmath_t* c0;      // the other rows
  int64_t n_prev;
  const scalar_t* dh;
  const scalar_t* dy;
  opmath_t* dc;
  scalar_t* dgates;
  scalar_t* m;
  int64_t unit_begin = 0;  // a team member's units (step_team.h)
  int64_t unit_end = -1;   // -1: every unit, H
};

// lstm_row_kernels<scalar_t>(): the kernels this CPU runs (honours ATEN_CPU_CAPABILITY, like
// ATen), for float, double and bfloat16.
template <typename scalar_t>
using LstmRowKernels = RowKernels<ForwardStep<scalar_t>, BackwardStep<scalar_t>>;
LSTM_EXT_KERNELS_BY_CAPABILITY(LstmRowKernels, lstm_row_kernels)

}  // namespace cpu
}  // namespace lstm_ext
