// The fused recurrent step, the parts every family shares that do not depend on the CPU
// capability: whether it is switched on, how a call's work is split across threads, and the
// final hidden state of every row. The register tile, the weight packing and the time walk are
// compiled per capability in fused_step_impl.h; a family adds the epilogue that turns a tile of
// pre-activations into its states (lstm/cpu/fused_layer_impl.h).
//
// Why fused: the plain loop writes each step's pre-activations to memory with a library GEMM,
// then reads them back in a separate pointwise pass, with a fork/join or a meeting around both.
// Here one register tile of rows x (every gate block of one block of hidden units) multiplies
// [x_t | h_{t-1}] by the packed [W_ih ; W_hh] and the family's gate math runs on the tile while
// it is still in registers, so a step touches memory only for its inputs and its states.
#pragma once

#include <cstdint>
#include <optional>

#include "runtime/cpu/capability.h"
#include "runtime/cpu/step_team.h"
#include "runtime/layer_checks.h"

namespace lstm_ext {
namespace cpu {

// LSTM_EXT_FUSED_STEP=0 keeps the plain loop, to compare the two. Read on every call (it is
// cheap), so that a benchmark can alternate the two in one process and a test can compare them.
bool fused_step_enabled();

// Whether a float32 call of this shape runs the fused step (switched on, and some rows and units).
// A forward is not one dense step of a few rows: that is what lstm_inference's streaming step runs
// on the plain loop's kernels, and the two must agree bitwise (tests/test_inference.py); packing
// the weights would cost as much as the step anyway. That agreement is a forward matter: such a
// backward runs fused.
bool fused_step_applies(const LayerShape& s, bool forward);

// Whether a float32 fused forward multiplies the input by W_ih before the loop (one GEMM over
// every step) instead of inside the step's tile: with one or two rows a tile reads each packed
// weight for too few products, and the input half of the weights, streamed again every step,
// costs more than the GEMM (docs/performance.md, "The fused step", the input projection).
bool fused_input_first(const LayerShape& s);

// This CPU's copy of a family's fused kernels, or none. There is no DEFAULT copy: the tile is
// sized for the registers of AVX2 and AVX-512, and the plain loop serves other CPUs. Called
// through LSTM_EXT_FUSED_KERNELS_HERE, as only x86 builds compile the AVX copies.
template <typename Kernels>
std::optional<Kernels> this_cpu_fused_kernels(Kernels (*avx512)(), Kernels (*avx2)()) {
  switch (cpu_capability()) {
    case Capability::AVX512: return avx512();
    case Capability::AVX2: return avx2();
    default: return std::nullopt;
  }
}

#if defined(__x86_64__)
#define LSTM_EXT_FUSED_KERNELS_HERE(NAME) ::lstm_ext::cpu::this_cpu_fused_kernels(&AVX512::NAME, &AVX2::NAME)
#else
#define LSTM_EXT_FUSED_KERNELS_HERE(NAME) std::nullopt
#endif

// How a call's (rows x unit blocks) of every step are split across threads.
struct FusedPartition {
  int64_t threads;  // 1: the calling thread alone
  // Each thread owns whole rows (sequences are independent: no meeting at all inside the walk),
  // or, when there are too few rows to share, a slice of the unit blocks for every row (one
  // meeting per step, since every unit of h_t feeds every unit of h_{t+1}).
  bool split_rows;
};

// One layer-direction's fused forward walk, on raw pointers, its input, weights and states in T
// (float, or bfloat16 where the CPU multiplies bfloat16 pairs: fused_layer.h). Every step reads
// only its input rows and the previous step's rows of out, so nothing is copied between steps.
template <typename T>
struct FusedWalkOf {
  const LayerShape* shape;
  bool reverse;
  const T* x;         // [N, I] every step's input rows
  const T* w_ih;      // [gates * H, I]
  const T* w_hh;      // [gates * H, H]
  const float* bias;  // [gates * H] (b_ih + b_hh, in float) or null
  const T* h0;        // [B, H]: h_{t-1} of the rows that start at step t
  T* out;             // [N, H]: h of every step; h_{t-1} of the rows that go on
  float* packed;      // scratch for the packed weights (fused_step_impl.h's fused_packed_floats)
};
using FusedWalk = FusedWalkOf<float>;

// One layer-direction's fused backward walk. Per walked step t (the forward walk's last first),
// one tile computes the gradient of h_t for a block of rows and units as
// dgates_{t'} @ W_hh (t' the step walked before, whose gate gradients every unit needs), and the
// family's epilogue turns it at once into step t's gate gradients, which the next tile reads.
struct FusedBackwardWalk {
  const LayerShape* shape;
  bool reverse;
  const float* w_hh;     // [gates * H, H]
  float* dgates;         // [N, gates * H] written by the epilogue, read by the next step's tiles
  // [N, H], or null: where the tiles read the last gate block's gradient instead of from dgates
  // (the GRU's n block: its recurrent product's gradient differs from its input projection's,
  // which dgates holds), also written by the epilogue.
  float* dgates_last;
  float* dh_state;       // [B, H]: the gradient of h_n in; of h0 out where need_state_grad
  bool need_state_grad;  // false: the product after the last step is skipped
  float* packed;         // scratch for the packed W_hh (fused_backward_packed_floats)
  // [B, H] zeros in, or null: the part of the gradient of h_t that reaches h_{t-1} directly,
  // not through the gates (zoneout on h keeps some of h_{t-1}). The family's epilogue writes it
  // for the rows of its step and adds it to what the tile gives; the walk adds it to h0's.
  float* dh_direct;
};

// The fused kernels of a family whose backward tile multiplies the gate gradients by W_hh alone
// (dx comes after the walk; the GRU, the LSTM variants), one capability's copy, with the sizes of
// the packed-weight scratch they need. Their forward's input segment may be empty (I = 0: the
// input projection was made beforehand and the epilogue adds it).
template <typename Forward, typename Backward>
struct RecurrentFusedKernels {
  int64_t (*forward_packed_floats)(int64_t I, int64_t H);
  void (*forward)(const Forward&);
  int64_t (*backward_packed_floats)(int64_t H);
  void (*backward)(const Backward&);
};

// The partition of a call with `flops_per_step` multiply-adds x 2 per step over B rows.
FusedPartition plan_fused_partition(int64_t B, int64_t flops_per_step);

// Runs member(begin, end, owned_slices, barrier) over [0, extent) split as step_team.h's
// run_team splits units (slices of whole multiples of `align`), on `threads` threads; one
// thread runs it on the caller with a barrier of its own. Rethrows a member's exception.
template <typename Member>
void run_fused_team(int64_t threads, int64_t extent, int64_t align, Member&& member) {
  if (threads > 1) return run_team(extent, align, member);
  StepBarrier barrier(1);
  member(int64_t{0}, extent, int64_t{1}, barrier);
  barrier.rethrow_if_failed();
}

// After a walk that wrote every step's h into out [N, H] only: h_n of every row into h_state
// [B, H], each row's h at the last step that row was active. Rows never active keep h_state.
// T: float or c10::BFloat16.
template <typename T>
void copy_final_hidden(const LayerShape& s, bool reverse, const T* out, T* h_state);

}  // namespace cpu
}  // namespace lstm_ext
