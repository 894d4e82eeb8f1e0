#!/usr/bin/env python3
"""Builds models/tiny_cnn.onnx, the demo and CLI-test model: a small residual CNN
(Conv+BN+ReLU, a residual block, pooling, classifier, softmax) exported by PyTorch with
fixed-seed weights, plus a sample input and PyTorch's output for it.

Run with Debian's python (python3-torch, python3-onnx):  /usr/bin/python3 models/make_tiny_cnn.py
The committed files are its output; re-running reproduces them.
"""
import os

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.block = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                                   nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16))
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16), nn.ReLU6(),
                                nn.Conv2d(16, 32, 1))
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(self.stem(x))
        x = torch.relu(x + self.block(x))
        x = self.dw(x)
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return torch.softmax(self.head(x), dim=1)


def main():
    torch.manual_seed(0)
    m = TinyCNN()
    with torch.no_grad():  # non-trivial BN statistics
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    m.eval()
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32))
    path = os.path.join(HERE, "tiny_cnn.onnx")
    torch.onnx.export(m, x, path, input_names=["input"], output_names=["probs"], opset_version=13,
                      dynamic_axes={"input": {0: "batch"}, "probs": {0: "batch"}},
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    np.save(os.path.join(HERE, "tiny_cnn_input.npy"), x.numpy())
    with torch.no_grad():
        np.save(os.path.join(HERE, "tiny_cnn_expected.npy"), m(x).numpy())
    print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
