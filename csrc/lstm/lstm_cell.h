// The LSTM's cell traits (lstm_layer, lstm_layer_backward, lstm_cell and lstm_cell_backward; schemas
// in ops.cpp).
#pragma once

#include "runtime/cell_traits.h"

namespace lstm_ext {

// Gates i, f, g, o, saved activated; c beside h; nn.LSTM's proj_size.
inline constexpr CellTraits kLstmCell{/*gates=*/4, /*saved_gates=*/4, /*cell_state=*/true, /*projection=*/true,
                                      "lstm_ext::lstm_layer", "lstm_ext::lstm_layer_backward", "lstm_ext::lstm_cell",
                                      "lstm_ext::lstm_cell_backward"};

}  // namespace lstm_ext
