#!/usr/bin/python3
"""Fixture for loading a torchvision ResNet state_dict as fewcl's backbone
(fcl_model_load_backbone, `fewcl episode --backbone-weights`): tests/fixtures/torchvision_resnet34.safetensors.

torchvision.models.resnet34() itself (not a re-built copy), every state_dict entry K except the
integer num_batches_tracked filled from pattern.py with seed fnv1a32(K) (the plain torchvision
key, no prefix) and the rule of fam_backbone.fill:

    4-d conv weight  pattern(s, shape, 1/sqrt(fan_in))   running_mean  pattern(s, shape, 0.1)
    running_var      1 + pattern(s, shape, 0.5)          other .weight 1 + pattern(s, shape, 0.3)
    other (biases)   pattern(s, shape, 0.2)              (fc.weight and fc.bias too, unused)

In evaluation mode (running statistics) the features of x = pattern(7, [4, 3, 64, 64], 1) are
everything before avgpool, flattened channel-major: layer4's [4, 512, 2, 2] -> [4, 2048].
Stored: features [4, 2048]; tests/test_episode.c writes the same state_dict (fc.* and
num_batches_tracked as I64 included) and compares.
usage: /usr/bin/python3 tools/reference/torchvision_resnet.py
"""
import math
import os
import sys

import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fam_backbone import fnv1a32  # noqa: E402
from fixture import save  # noqa: E402
from pattern import pattern  # noqa: E402


def fill(model):
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if key.endswith("num_batches_tracked"):
                continue
            s, shape, leaf = fnv1a32(key), tuple(t.shape), key.rsplit(".", 1)[1]
            if t.dim() == 4:
                v = pattern(s, shape, 1.0 / math.sqrt(shape[1] * shape[2] * shape[3]))
            elif leaf == "running_mean":
                v = pattern(s, shape, 0.1)
            elif leaf == "running_var":
                v = 1 + pattern(s, shape, 0.5)
            elif leaf == "weight":
                v = 1 + pattern(s, shape, 0.3)
            else:
                v = pattern(s, shape, 0.2)
            t.copy_(v)


def features(tv, x):
    x = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
    return tv.layer4(tv.layer3(tv.layer2(tv.layer1(x)))).flatten(1)


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    tv = torchvision.models.resnet34()
    fill(tv)
    tv.eval()
    x = pattern(7, (4, 3, 64, 64), 1.0)
    with torch.no_grad():
        f = features(tv, x)
        # the features are what torchvision's own forward pools: its logits follow from them
        pooled = f.view(4, 512, 4).mean(dim=2)
        assert torch.allclose(tv.fc(pooled), tv(x), atol=1e-4)
    out = os.path.join(HERE, "..", "..", "tests", "fixtures", "torchvision_resnet34.safetensors")
    save(out, {"features": f}, {"torch": torch.__version__, "torchvision": torchvision.__version__,
                                "model": "torchvision.models.resnet34", "input": "pattern(7, [4,3,64,64], 1)"})
    print("wrote torchvision_resnet34.safetensors", tuple(f.shape))
