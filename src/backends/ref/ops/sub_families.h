// Registration of the reference kernels a family keeps in files of their own: called by the
// family's Register<Family>Kernels (backends/ref/kernel.h), one declaration each.
#pragma once

namespace kiln {

class RefKernelRegistry;

void RegisterResizeKernels(RefKernelRegistry& r);      // conv_pool_resize.cc
void RegisterGridSampleKernels(RefKernelRegistry& r);  // conv_pool_sampling.cc
void RegisterRoiKernels(RefKernelRegistry& r);         // conv_pool_roi.cc
void RegisterEinsumKernels(RefKernelRegistry& r);      // linalg_norm_einsum.cc
void RegisterAttentionKernels(RefKernelRegistry& r);   // linalg_norm_attention.cc
void RegisterRecurrentKernels(RefKernelRegistry& r);   // reduce_rnn_signal_rnn.cc
void RegisterSignalKernels(RefKernelRegistry& r);      // reduce_rnn_signal_signal.cc
void RegisterTextKernels(RefKernelRegistry& r);        // reduce_rnn_signal_text.cc

}  // namespace kiln
