// The GEMM of one time step against a weight that stays the same for every step.
//
// MKL's sgemm packs the weight again on every call; on the small-row GEMMs of a time loop that
// packing costs as much as the arithmetic. Where torch has oneDNN, the weight is packed once
// per call of the op and every step runs oneDNN's linear on the packed weight.
// Steps of a few rows run small_gemm_kmajor on the weight transposed once per call; other small
// steps keep at::addmm, whose fixed overhead is lower than oneDNN's.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace lstm_ext {
namespace cpu {

// rows @ w_ih^T + b_ih + b_hh for every step's input at once, a new contiguous tensor: oneDNN's
// linear on a packed weight for large projections where torch has it (faster than MKL's
// sgemm there), small_rows_gemm for a few rows, at::addmm otherwise.
at::Tensor input_projection(const at::Tensor& rows, const at::Tensor& w_ih, const std::optional<at::Tensor>& b_ih,
                            const std::optional<at::Tensor>& b_hh);

// Whether RecurrentGemm(weight, max_rows) packs the weight for oneDNN (otherwise its steps of a
// few rows run small_rows_gemm).
bool packs_weight(const at::Tensor& weight, int64_t max_rows);

class RecurrentGemm {
 public:
  // weight [N, K]; every step computes rows [n, K] @ weight^T -> [n, N], n <= max_rows, for
  // `steps` steps.
  RecurrentGemm(const at::Tensor& weight, int64_t max_rows, int64_t steps);

  // rows @ weight^T + acc. Either acc itself, updated in place, or a new tensor: read the result
  // from the returned tensor, not from acc.
  at::Tensor accumulate(const at::Tensor& rows, at::Tensor acc) const;

  // out = rows @ weight^T, written into out.
  void write(const at::Tensor& rows, at::Tensor out) const;

  // rows @ weight^T: written into out and returned, or (packed weight) a new tensor, which saves
  // write()'s copy. Read the result from the returned tensor, not from out.
  at::Tensor product(const at::Tensor& rows, at::Tensor out) const;

  // The small-rows step on raw pointers, for time loops whose steps cost a few microseconds:
  // out [n, N] (row stride ld_out) = (or +=, with accumulate) rows [n, K] (row stride ld_rows) @
  // weight^T, without the tensor views the methods above need (each costs about as much as a
  // small step's arithmetic). Returns false and
  // does nothing where this weight's steps do not run small_gemm_kmajor; then call those.
  template <typename scalar_t>
  bool small_step(const scalar_t* rows, int64_t ld_rows, int64_t n, scalar_t* out, int64_t ld_out,
                  bool accumulate) const;

 private:
  at::Tensor weight_t_;  // weight^T as a view, for at::addmm
  at::Tensor packed_;    // oneDNN's packed weight, or undefined
  at::Tensor kmajor_;    // weight^T contiguous, for small_gemm_kmajor, or undefined

  // small_step on tensors (out updated in place); false where it does not apply.
  bool small_tensor_step(const at::Tensor& rows, const at::Tensor& out, bool accumulate) const;
};

}  // namespace cpu
}  // namespace lstm_ext
