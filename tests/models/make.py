#!/usr/bin/env python3
"""
make.py — exports the PyTorch models the ONNX loader is tested on (issue 13),
with torch's own outputs on fixed inputs, for tests/test_torch_models.c.
Run only where Debian's python3-torch (and python3-torchvision) are
installed; CI never needs torch: the models and outputs are committed.

  /usr/bin/python3 tests/models/make.py [--full DIR [NAME...]]

Default: the small set in tests/models/ (random weights, seed 0, each file
well under 1 MB): for each model M, M.onnx, M.input.npy (a fixed input,
batch 2) and M.output.npy (torch's output on it, float32); in unbatched/,
models exported from an input without a batch axis (one input, no batch).
--full DIR [NAME...]: the issue's full-size torchvision models (all, or the
NAMEs; 3x64x64, AlexNet and
VGG at 224) into DIR, to measure against; not committed.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)


class Flat(nn.Module):
    """x.view(x.size(0), -1): the Shape/Gather/Unsqueeze/Concat chain."""
    def forward(self, x):
        return x.view(x.size(0), -1)


class CatSkip(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding=1)
        self.b = nn.Conv2d(2 * c, c, 1)

    def forward(self, x):
        return self.b(torch.cat([x, F.relu(self.a(x))], dim=1))


class Normalize(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class SqueezeExcite(nn.Module):
    """EfficientNet's: x * sigmoid(conv(silu(conv(mean(x)))))."""
    def __init__(self, c):
        super().__init__()
        self.a, self.b = nn.Conv2d(c, 4, 1), nn.Conv2d(4, c, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.b(F.silu(self.a(s))))


def conv_net(*mid, c=3, head=10, hw=8):
    """A small conv net: the layers given, between a first conv and a Linear head."""
    layers = [nn.Conv2d(c, 8, 3, padding=1)] + list(mid) + [nn.AdaptiveAvgPool2d(1), Flat(), nn.Linear(8, head)]
    return nn.Sequential(*layers)


def small_models():
    tv = None
    try:
        import torchvision.models as tv
        from torchvision.models.resnet import BasicBlock
        from torchvision.models.mobilenetv2 import InvertedResidual
        from torchvision.models.shufflenetv2 import ShuffleNetV2
    except ImportError:
        print("make.py: torchvision absent: its blocks are skipped", file=sys.stderr)
    m = {}
    x3 = lambda hw=8: torch.randn(2, 3, hw, hw)
    m["mlp"] = (nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, 10)), x3())
    m["bn_prelu"] = (conv_net(nn.BatchNorm2d(8), nn.PReLU(8), nn.MaxPool2d(2, ceil_mode=True)), x3(9))
    m["grouped_dilated"] = (conv_net(nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4), nn.ReLU()), x3())
    m["cat_skip"] = (conv_net(CatSkip(8), nn.ReLU()), x3())
    m["relu6_hardtanh"] = (conv_net(nn.ReLU6(), nn.Conv2d(8, 8, 1), nn.Hardtanh(-0.5, 0.5)), x3())
    m["clamp"] = (conv_net(nn.ReLU(), nn.Conv2d(8, 8, 1), nn.Hardtanh(0, 2)), x3())
    m["zeropad_reflect"] = (nn.Sequential(nn.ZeroPad2d((1, 2, 0, 1)), nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
                                          nn.AdaptiveAvgPool2d(1), Flat(), nn.Linear(8, 10)), x3())
    m["normalize"] = (nn.Sequential(Normalize(), conv_net(nn.ReLU())), x3())
    m["conv1d"] = (nn.Sequential(nn.Conv1d(3, 8, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2), nn.Conv1d(8, 8, 3), nn.AvgPool1d(2),
                                 nn.Flatten(), nn.Linear(8 * 7, 10)), torch.randn(2, 3, 32))
    m["smooth"] = (conv_net(nn.Tanh(), nn.Conv2d(8, 8, 1), nn.ELU(), nn.Conv2d(8, 8, 1), nn.GELU(), nn.Conv2d(8, 8, 1), nn.Sigmoid(),
                            nn.Conv2d(8, 8, 1), nn.Softplus()), x3())
    m["hard"] = (conv_net(nn.Hardswish(), nn.Conv2d(8, 8, 1), nn.Hardsigmoid()), x3())
    m["leaky_avg"] = (conv_net(nn.LeakyReLU(0.1), nn.AvgPool2d(2, count_include_pad=False, padding=1)), x3())
    if tv:
        m["resnet_block"] = (conv_net(BasicBlock(8, 8), BasicBlock(8, 8, stride=2, downsample=nn.Sequential(nn.Conv2d(8, 8, 1, stride=2),
                                                                                                      nn.BatchNorm2d(8)))), x3())
        m["mobilenet_v2_block"] = (conv_net(InvertedResidual(8, 8, 1, 2), InvertedResidual(8, 8, 2, 4)), x3())
        m["shufflenet_v2"] = (ShuffleNetV2([2, 2, 2], [8, 16, 24, 32, 64], num_classes=10), x3(32))
        m["mobilenet_v3_small"] = (tv.mobilenet_v3_small(width_mult=0.25, num_classes=10), x3(32))
        from torchvision.models.squeezenet import Fire
        m["squeezenet_fire"] = (conv_net(Fire(8, 4, 4, 4), nn.MaxPool2d(3, 2, ceil_mode=True)), x3())
    m["silu_se"] = (conv_net(nn.SiLU(), SqueezeExcite(8)), x3())
    return m


def unbatched_models():
    """Models exported from an input without a batch axis (a 1-D vector, a 3-D image): netmoments runs
    forward on them whole and refuses the moments, which need a batch axis."""
    return {"linear_1d": (nn.Linear(784, 10), torch.randn(784)),
            "conv_chw": (nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(0), nn.Linear(4 * 6 * 6, 10)), torch.randn(3, 8, 8))}


def calibrated_bn(model, batches=4):
    """BatchNorm running statistics from a few random batches (train mode, cumulative average): torchvision's
    GoogLeNet initialises its convs with std 0.01, and with the default statistics (mean 0, variance 1) its
    activations vanish layer by layer, so that its output would be the classifier's bias whatever the input."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(8, 3, 64, 64))
    return model.eval()


def full_models():
    import torchvision.models as tv
    x64, x224 = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 224, 224)
    return {"alexnet": (tv.alexnet(), x224), "vgg11": (tv.vgg11(), x224), "vgg11_bn": (tv.vgg11_bn(), x224),
            "resnet18": (tv.resnet18(), x64), "regnet_x_400mf": (tv.regnet_x_400mf(), x64), "squeezenet1_0": (tv.squeezenet1_0(), x64),
            "densenet121": (tv.densenet121(), x64), "googlenet": (calibrated_bn(tv.googlenet(aux_logits=False, init_weights=True)), x64),
            "shufflenet_v2_x0_5": (tv.shufflenet_v2_x0_5(), x64), "mobilenet_v2": (tv.mobilenet_v2(), x64),
            "mobilenet_v3_small": (tv.mobilenet_v3_small(), x64), "efficientnet_b0": (tv.efficientnet_b0(), x64)}


def export(name, model, x, out, opset=13, batched=True):
    model.eval()
    with torch.no_grad():
        y = model(x)
    path = os.path.join(out, name + ".onnx")
    if batched:
        torch.onnx.export(model, x[:1], path, opset_version=opset, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    else:
        torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"], output_names=["output"])
    np.save(os.path.join(out, name + ".input.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(out, name + ".output.npy"), y.numpy().astype(np.float32))
    print(f"{name}: {os.path.getsize(path)} bytes, input {tuple(x.shape)}, output {tuple(y.shape)}")


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--full":
        os.makedirs(sys.argv[2], exist_ok=True)
        for name, (model, x) in full_models().items():
            if len(sys.argv) == 3 or name in sys.argv[3:]:
                export(name, model, x, sys.argv[2])
        return
    out = os.path.dirname(os.path.abspath(__file__))
    for name, (model, x) in small_models().items():
        export(name, model, x, out)
    os.makedirs(os.path.join(out, "unbatched"), exist_ok=True)
    for name, (model, x) in unbatched_models().items():
        export(name, model, x, os.path.join(out, "unbatched"), batched=False)


if __name__ == "__main__":
    main()
