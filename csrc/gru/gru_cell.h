// The GRU's cell traits (gru_layer, gru_layer_backward, gru_cell and gru_cell_backward; schemas
// in ops.cpp).
#pragma once

#include "runtime/cell_traits.h"

namespace lstm_ext {

// Gates r, z, n; saved r, z, n and hn = h W_hn + b_hn (gru_gates.h); h is the only memory.
inline constexpr CellTraits kGruCell{/*gates=*/3, /*saved_gates=*/4, /*cell_state=*/false, /*projection=*/false,
                                     "lstm_ext::gru_layer", "lstm_ext::gru_layer_backward", "lstm_ext::gru_cell",
                                     "lstm_ext::gru_cell_backward"};

}  // namespace lstm_ext
