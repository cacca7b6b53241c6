#!/usr/bin/env python3
"""PyTorch side of `fewcl bench --model`: the enhanced FS-CT of the reference (the backbones of
tools/reference/fam_backbone.py, the V-D head of fam_enhanced.py, fp32, TF32 off) on one
episode, timed as fewcl times it: the evaluation forward (no_grad, accuracy read back), the
training step (forward, backward, AdamW), each the median of N after a warm-up, and N_test
evaluation episodes back to back. Prints one JSON line with the same keys as
`fewcl bench --model --json`, so tools/bench/compare.sh can divide one by the other.

usage: model_torch.py [--device cpu|cuda] [--threads T] [--repeat N] [--test-episodes N]
                      [--backbone conv4|conv6|resnet18|resnet34] [--image-size S]
                      [--n-way N] [--k-shot K] [--n-query Q] [--reduced-dim R]
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
from fam_backbone import ConvNet, ResNetBody, fill  # noqa: E402
from fam_enhanced import head_forward, head_parameters  # noqa: E402
from pattern import pattern  # noqa: E402

BACKBONES = {"conv4": 4, "conv6": 6, "resnet18": 18, "resnet34": 34}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--test-episodes", type=int, default=0)
    ap.add_argument("--backbone", default="conv4", choices=sorted(BACKBONES))
    ap.add_argument("--image-size", type=int, default=84)
    ap.add_argument("--n-way", type=int, default=5)
    ap.add_argument("--k-shot", type=int, default=5)
    ap.add_argument("--n-query", type=int, default=16)
    ap.add_argument("--reduced-dim", type=int, default=512)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True  # PyTorch at its best: cuDNN picks per shape
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    depth = BACKBONES[a.backbone]
    net = ConvNet(depth) if depth in (4, 6) else ResNetBody(depth)
    fill(net)
    net = net.to(dev)
    n, k, q, S = a.n_way, a.k_shot, a.n_query, a.image_size
    x = pattern(7, (n * (k + q), 3, S, S), 1.0).to(dev)
    with torch.no_grad():
        net.eval()
        dim = net(x[:1]).shape[1]
    cfg = dict(n=n, k=k, q=q, D=dim, r=a.reduced_dim, heads=4, dh=64, mlp=512, depth=2)
    prm = {key: t.detach().float().to(dev).requires_grad_()
           for key, t in head_parameters(cfg).items()}
    opt = torch.optim.AdamW(list(net.parameters()) + list(prm.values()), lr=1e-3,
                            weight_decay=1e-5)
    labels = torch.arange(n, device=dev).repeat_interleave(q)

    def evaluate():
        net.eval()
        with torch.no_grad():
            logits = head_forward(cfg, prm, net(x), "cosine", True, training=False)["logits"]
            return (logits.argmax(dim=1) == labels).float().mean().item()

    def train():
        net.train()
        opt.zero_grad()
        res = head_forward(cfg, prm, net(x), "cosine", True, training=True)
        opt.step()
        return res["loss"].item()

    def median(fn):
        fn()
        times = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    out = {"tool": "pytorch " + torch.__version__,
           "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "threads": torch.get_num_threads(),
           "eval_forward_s": median(evaluate), "train_step_s": median(train)}
    if a.test_episodes:
        t0 = time.perf_counter()
        for _ in range(a.test_episodes):
            evaluate()
        sync()
        out["test_episodes"] = a.test_episodes
        out["test_episodes_s"] = time.perf_counter() - t0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
