#!/usr/bin/env python3
"""Writes model.onnx here: a step model with the test card's shapes (8 features, hidden 64)
that ONNX Runtime fails on for a row whose first normalised input is 4 or more (a Gather out of
its table's bounds), so that tests can show one such row never fails its batch or the job.
Run: /usr/bin/python3 make.py (PyTorch)."""
import torch, torch.nn as nn
F, H = 8, 64
class Poison(nn.Module):
    """A step model that fails in ONNX Runtime on a row whose first input is 4 or more: a Gather
    whose index comes from the input runs out of its table's bounds."""
    def __init__(self):
        super().__init__()
        self.register_buffer("table", torch.zeros(4))
    def forward(self, x, h):
        idx = torch.clamp(x[:, 0].floor(), min=0).long()
        g = torch.index_select(self.table, 0, idx)
        y = x * 0.5 + g.unsqueeze(1)
        h_next = torch.tanh(h * 0.9 + 0.01 * x.sum(dim=1, keepdim=True))
        return h_next, y
m = Poison().eval()
torch.onnx.export(m, (torch.zeros(1, F), torch.zeros(1, H)), "poison.onnx", input_names=["x", "h"],
                  output_names=["h_next", "y"], opset_version=14,
                  dynamic_axes={"x": {0: "batch"}, "h": {0: "batch"}, "h_next": {0: "batch"}, "y": {0: "batch"}})
print("ok")
