// The op schemas of lstm_ext, and nothing else. Kernels live in cpu/ and cuda/;
// fake kernels and autograd formulas live in lstm_ext/_ops.py.
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
  m.def(
      "lstm_cell_backward(Tensor grad_hy, Tensor grad_cy, Tensor input, Tensor hx, Tensor cx, "
      "Tensor w_ih, Tensor w_hh, Tensor gates, Tensor cy, bool[3] output_mask) "
      "-> (Tensor grad_input, Tensor grad_hx, Tensor grad_cx, Tensor grad_w_ih, Tensor grad_w_hh, "
      "Tensor grad_bias)");
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
