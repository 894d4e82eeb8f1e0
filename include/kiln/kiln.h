// kiln public API: everything (libkiln, kiln::kiln): the runtime (kiln/runtime.h: load a plan
// or a model, run inference), the builder (kiln/builder.h: optimize, time, save plans) and
// the network-definition API (kiln/network.h).
//
//   #include <kiln/kiln.h>
//   auto engine = kiln::Engine::Load("resnet50.plan");          // or "resnet50.onnx"
//   if (!engine.ok()) { std::cerr << engine.status().ToString() << "\n"; return 1; }
//   std::vector<float> image(1 * 3 * 224 * 224);
//   auto outputs = (*engine)->Infer({{"input", kiln::HostTensor::Wrap(image.data(), {1, 3, 224, 224})}});
//   if (!outputs.ok()) { std::cerr << outputs.status().ToString() << "\n"; return 1; }
//   const kiln::HostTensor& logits = outputs->at("logits");
#pragma once

#include "kiln/builder.h"
#include "kiln/network.h"
#include "kiln/runtime.h"
