// Batch-parallel execution: a batch of B samples run as B/b independent slices of b
// samples, one slice per thread (each slice's kernels single-threaded), instead of every
// layer splitting its work across the threads. For small layers at batch > 1 (MobileNet's
// depthwise and 1x1 convolutions) this keeps each thread's activations in its own cache and
// removes a barrier per layer; the builder times both schedules and keeps the faster.
//
// It is only correct when no layer mixes samples. BatchSeparable() proves that for a
// graph: every op is one whose result for sample i reads only sample i when dim 0 is the
// batch (convolutions, pooling, elementwise, matmuls with a per-sample left operand,
// normalizations over axes > 0, reshapes that keep samples contiguous, ...), and the graph
// specialized for b samples has every value of the same shape as for B samples except dim
// 0, scaled by B/b (so each slice's inputs and outputs are contiguous row-major chunks).
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"
#include "ir/graph.h"

namespace kiln {

// `big`: the graph with static input shapes whose dim 0 is `batch` on every non-constant
// input; `small`: the same graph (same value and node ids) re-inferred with dim 0 = `slice`.
// OK when running `small` on each contiguous slice of the inputs gives `big`'s outputs; else
// the reason, naming the node or value that prevents it.
Status BatchSeparable(const Graph& big, const Graph& small, int64_t batch, int64_t slice);

// The batch size of a graph's non-constant inputs when they all share dim 0 (>= 1), else 0.
int64_t CommonInputBatch(const Graph& graph);

}  // namespace kiln
