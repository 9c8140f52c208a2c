// The op schemas of lstm_ext, and nothing else. Kernels live in each family's cpu/ and cuda/
// folders; fake kernels and autograd formulas in each family's lstm_ext/<family>/ops.py.
#include <Python.h>
#include <torch/library.h>

extern "C" {
// An empty importable module: `import lstm_ext._C` loads this library, whose static
// initializers register the ops. No pybind11 is needed, and the limited API keeps one
// wheel valid across Python versions.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(lstm_ext, m) {
  // One layer, one direction, the whole sequence. Dense: input [T, B, I] with batch_sizes None.
  // Packed: input [N, I] with batch_sizes [T] (int64, CPU, non-increasing), as in PackedSequence.
  // gates/cells are saved for backward: activated gates [N, 4H] and cell states [N, H].
  m.def(
      "lstm_layer(Tensor input, Tensor h0, Tensor c0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, "
      "Tensor? b_hh, Tensor? w_hr, Tensor? batch_sizes, bool reverse) "
      "-> (Tensor output, Tensor h_n, Tensor c_n, Tensor gates, Tensor cells)");
  // output_mask: which of (input, h0/c0, weights) need gradients; the others come back empty.
  // grad_bias serves both b_ih and b_hh; grad_w_hr is empty without a projection.
  m.def(
      "lstm_layer_backward(Tensor grad_output, Tensor grad_h_n, Tensor grad_c_n, Tensor input, "
      "Tensor h0, Tensor c0, Tensor w_ih, Tensor w_hh, Tensor? w_hr, Tensor? batch_sizes, "
      "bool reverse, Tensor output, Tensor gates, Tensor cells, bool[3] output_mask) "
      "-> (Tensor grad_input, Tensor grad_h0, Tensor grad_c0, Tensor grad_w_ih, Tensor grad_w_hh, "
      "Tensor grad_bias, Tensor grad_w_hr)");
  // One step, for LSTMCell: input [B, I], hx and cx [B, H].
  m.def(
      "lstm_cell(Tensor input, Tensor hx, Tensor cx, Tensor w_ih, Tensor w_hh, Tensor? b_ih, "
      "Tensor? b_hh) -> (Tensor hy, Tensor cy, Tensor gates)");
  // A whole nn.LSTM forward for inference (no autograd): dense input [T, B, I] ([B, T, I] with
  // batch_first); hx empty (zeros) or (h_0 [L*D, B, P], c_0 [L*D, B, H]); weights as
  // nn.LSTM's _flat_weights. Returns [output, h_n, c_n]. Kernel: csrc/lstm/inference.cpp.
  m.def(
      "lstm_inference(Tensor input, Tensor[] hx, Tensor[] weights, bool has_biases, int num_layers, "
      "bool bidirectional, bool batch_first) -> Tensor[]");
  m.def(
      "lstm_cell_backward(Tensor grad_hy, Tensor grad_cy, Tensor input, Tensor hx, Tensor cx, "
      "Tensor w_ih, Tensor w_hh, Tensor gates, Tensor cy, bool[3] output_mask) "
      "-> (Tensor grad_input, Tensor grad_hx, Tensor grad_cx, Tensor grad_w_ih, Tensor grad_w_hh, "
      "Tensor grad_bias)");
}

// ---- LSTM variants (peephole, zoneout, layer norm, the lesson's use gate) ----------------
// One layer-direction, as lstm_layer: input dense [T, B, I] or packed [N, I] with batch_sizes,
// w_ih [4H, I], biases [4H], no projection: h0, c0 [B, H], w_hh [4H, H]. Without w_ih (and
// without biases), input holds the input gates instead, [T, B, 4H] or [N, 4H], made by the
// caller: with layer norm on the input projection, LN(x @ w_ih^T) + biases.
// peephole [3H] = (p_i, p_f, p_o); zoneout_h / zoneout_c shaped like output: how much of the
// previous h / c each unit keeps (0/1 masks in training, the probability in eval mode).
// ln_hh_weight [4H]: gain of the layer norm of h_prev @ w_hh^T (its bias belongs in the input
// gates); ln_c_weight, ln_c_bias [H]: the layer norm of c before the use gate.
// w_u [H, H], b_u [H]: the lesson's use gate, h = o * tanh((c_prev * f) @ w_u^T + b_u) (not with
// layer norm).
// Saved for backward: cells (c before zoneout), states (c after zoneout, empty without zoneout_c),
// rec (normalized h_prev @ w_hh^T, empty without ln_hh_weight), stats ([N, 3]: 1/std of the
// recurrent projection, mean and 1/std of c; empty without layer norm), lesson ([2, N, H]:
// c_prev * f and the use gate's pre-activation; empty without w_u). CPU: float32, float64.
TORCH_LIBRARY_FRAGMENT(lstm_ext, m) {
  m.def(
      "lstm_variant_layer(Tensor input, Tensor? w_ih, Tensor? b_ih, Tensor? b_hh, Tensor h0, Tensor c0, "
      "Tensor w_hh, Tensor? peephole, "
      "Tensor? zoneout_h, Tensor? zoneout_c, Tensor? ln_hh_weight, Tensor? ln_c_weight, Tensor? ln_c_bias, "
      "Tensor? w_u, Tensor? b_u, Tensor? batch_sizes, bool reverse) "
      "-> (Tensor output, Tensor h_n, Tensor c_n, Tensor gates, Tensor cells, Tensor states, Tensor rec, "
      "Tensor stats, Tensor lesson)");
  // output_mask: (input, h0/c0, weights: w_ih, w_hh, biases, peephole, layer-norm gains, w_u, b_u);
  // masked-out gradients come back empty, and so do those of absent weights. input is read only
  // for w_ih's gradient (it may be empty without w_ih).
  m.def(
      "lstm_variant_layer_backward(Tensor grad_output, Tensor grad_h_n, Tensor grad_c_n, Tensor input, "
      "Tensor? w_ih, Tensor h0, Tensor c0, Tensor w_hh, Tensor? peephole, Tensor? zoneout_h, Tensor? zoneout_c, "
      "Tensor? ln_hh_weight, Tensor? ln_c_weight, Tensor? ln_c_bias, Tensor? w_u, Tensor? b_u, Tensor? batch_sizes, "
      "bool reverse, "
      "Tensor output, Tensor gates, Tensor cells, Tensor states, Tensor rec, Tensor stats, Tensor lesson, "
      "bool[3] output_mask) "
      "-> (Tensor grad_input, Tensor grad_h0, Tensor grad_c0, Tensor grad_w_ih, Tensor grad_w_hh, "
      "Tensor grad_bias, Tensor grad_peephole, Tensor grad_ln_hh_weight, Tensor grad_ln_c_weight, "
      "Tensor grad_ln_c_bias, Tensor grad_w_u, Tensor grad_b_u)");
  // The variants' input projection: input [rows, in] @ weight [out, in]^T + bias, on the layer
  // kernels' projection GEMM (CPU; differentiable through lstm_ext/lstm_variants/ops.py).
  m.def("linear(Tensor input, Tensor weight, Tensor? bias) -> Tensor");
  // The variants' zoneout masks: entries 1 with probability p, else 0, a function of the 0-dim
  // int64 seed (drawn from torch's generator by the caller) alone; on seed's device.
  m.def("bernoulli_mask(Tensor seed, float p, int[] size, ScalarType dtype) -> Tensor");
}

// ---- GRU ------------------------------------------------------------------------------------
TORCH_LIBRARY_FRAGMENT(lstm_ext, m) {
  // One GRU layer, one direction, the whole sequence; input and batch_sizes as in lstm_layer.
  // h0 [B, H], w_ih [3H, I], w_hh [3H, H], biases [3H] (torch's gate order r, z, n).
  // gates is saved for backward: [N, 4H] in the op-math dtype, blocks r, z, n and
  // hn = h W_hn + b_hn (the recurrent part of the candidate, before the reset gate).
  m.def(
      "gru_layer(Tensor input, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, "
      "Tensor? batch_sizes, bool reverse) -> (Tensor output, Tensor h_n, Tensor gates)");
  // output_mask: which of (input, h0, weights) need gradients; the others come back empty.
  // The two bias gradients differ in the n block (b_hn is scaled by the reset gate).
  m.def(
      "gru_layer_backward(Tensor grad_output, Tensor grad_h_n, Tensor input, Tensor h0, Tensor w_ih, "
      "Tensor w_hh, Tensor? batch_sizes, bool reverse, Tensor output, Tensor gates, bool[3] output_mask) "
      "-> (Tensor grad_input, Tensor grad_h0, Tensor grad_w_ih, Tensor grad_w_hh, Tensor grad_b_ih, "
      "Tensor grad_b_hh)");
  // One step, for GRUCell: input [B, I], hx [B, H].
  m.def(
      "gru_cell(Tensor input, Tensor hx, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh) "
      "-> (Tensor hy, Tensor gates)");
  m.def(
      "gru_cell_backward(Tensor grad_hy, Tensor input, Tensor hx, Tensor w_ih, Tensor w_hh, Tensor gates, "
      "bool[3] output_mask) -> (Tensor grad_input, Tensor grad_hx, Tensor grad_w_ih, Tensor grad_w_hh, "
      "Tensor grad_b_ih, Tensor grad_b_hh)");
}
