#!/usr/bin/env python3
"""Exports torchvision detection models (random weights, Debian's PyTorch) as ONNX models whose
tails the CPU backend cannot take whole: NonZero/NMS/If post-processing, a box head on a
data-dependent number of proposals. They measure kiln's per-layer fallback (CPU islands,
dynamic islands, the reference kernels on the host) against ONNX Runtime.

  export_detection.py OUT_DIR [ssdlite|fasterrcnn|retinanet ...]    (default: all three)

score thresholds are 0, so that post-processing sees every candidate box (the worst case
for NMS and TopK); class logits get spread random weights so that scores do not tie. Writes OUT_DIR/<name>.onnx and OUT_DIR/<name>_x.npy (one 3x320x320 image).
"""
import os
import sys

import numpy as np
import torch
import torchvision


def build(name):
    det = torchvision.models.detection
    if name == "ssdlite":
        return det.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, score_thresh=0.0)
    if name == "retinanet":
        return det.retinanet_resnet50_fpn(weights=None, weights_backbone=None, min_size=320, max_size=320, score_thresh=0.0)
    if name == "fasterrcnn":
        return det.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, box_score_thresh=0.0)
    raise SystemExit(f"unknown model '{name}' (ssdlite, fasterrcnn, retinanet)")


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name in sys.argv[2:] or ["ssdlite", "fasterrcnn", "retinanet"]:
        torch.manual_seed(0)
        m = build(name).eval()
        # Random weights score every class alike (a uniform softmax), and detections that tie
        # on score come out in whatever order float rounding favours. Spread the class logits
        # so that the outputs are well defined and comparable between engines.
        with torch.no_grad():
            for mod_name, mod in m.named_modules():
                if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)) and ("cls" in mod_name or "classification" in mod_name):
                    torch.nn.init.normal_(mod.weight, std=0.3)
        x = torch.rand(1, 3, 320, 320)
        torch.onnx.export(m, ([x[0]],), os.path.join(out, name + ".onnx"), opset_version=13, input_names=["image"])
        np.save(os.path.join(out, name + "_x.npy"), x[0].numpy())
        print(name, "ok")


if __name__ == "__main__":
    main()
