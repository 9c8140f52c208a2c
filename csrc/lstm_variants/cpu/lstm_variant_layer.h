// The CPU kernels of the LSTM variants (peephole, zoneout, layer norm, the lesson's
// use gate): one layer-direction over a whole
// dense or packed sequence, from the layer's input x and W_ih, or from input gates projected
// beforehand (layer norm on the input projection).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <optional>
#include <tuple>

namespace lstm_ext {
namespace cpu {

using VariantLayerResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
                                      at::Tensor, at::Tensor, at::Tensor>;
using VariantLayerGrads = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
                                     at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// (output, h_n, c_n, gates, cells, states, rec, stats, lesson); see the schema in ops.cpp.
VariantLayerResult lstm_variant_layer(const at::Tensor& input, const std::optional<at::Tensor>& w_ih,
                                      const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh,
                                      const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_hh,
                                      const std::optional<at::Tensor>& peephole,
                                      const std::optional<at::Tensor>& zoneout_h,
                                      const std::optional<at::Tensor>& zoneout_c,
                                      const std::optional<at::Tensor>& ln_hh_weight,
                                      const std::optional<at::Tensor>& ln_c_weight,
                                      const std::optional<at::Tensor>& ln_c_bias,
                                      const std::optional<at::Tensor>& w_u, const std::optional<at::Tensor>& b_u,
                                      const std::optional<at::Tensor>& batch_sizes, bool reverse);

// (grad_input, grad_h0, grad_c0, grad_w_ih, grad_w_hh, grad_bias, grad_peephole, grad_ln_hh_weight,
// grad_ln_c_weight, grad_ln_c_bias, grad_w_u, grad_b_u)
VariantLayerGrads lstm_variant_layer_backward(
    const at::Tensor& grad_output, const at::Tensor& grad_h_n, const at::Tensor& grad_c_n, const at::Tensor& input,
    const std::optional<at::Tensor>& w_ih, const at::Tensor& h0,
    const at::Tensor& c0, const at::Tensor& w_hh, const std::optional<at::Tensor>& peephole,
    const std::optional<at::Tensor>& zoneout_h, const std::optional<at::Tensor>& zoneout_c,
    const std::optional<at::Tensor>& ln_hh_weight, const std::optional<at::Tensor>& ln_c_weight,
    const std::optional<at::Tensor>& ln_c_bias, const std::optional<at::Tensor>& w_u,
    const std::optional<at::Tensor>& b_u, const std::optional<at::Tensor>& batch_sizes, bool reverse,
    const at::Tensor& output, const at::Tensor& gates, const at::Tensor& cells, const at::Tensor& states,
    const at::Tensor& rec, const at::Tensor& stats, const at::Tensor& lesson, std::array<bool, 3> output_mask);

}  // namespace cpu
}  // namespace lstm_ext
