#!/usr/bin/env python3
"""PyTorch side of `fewcl bench`: the same cases, same shapes, fp32, timed the same way
(median of N runs after a warm-up, synchronising after each run), so that the two tools can
be compared side by side in one session. TF32 is off: fewcl computes in plain fp32.

usage: ops_torch.py [--device cuda|cpu] [--repeat N] [--quick] [--threads T]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

CASES = [  # name, kind, rows, in, out, big  (as apps/fewcl/bench.c)
    ("linear fwd 105x1600->512 (conv4 projection)", 0, 105, 1600, 512, False),
    ("linear bwd 105x1600->512", 1, 105, 1600, 512, False),
    ("linear fwd 80x512->256 (attention q)", 0, 80, 512, 256, False),
    ("linear fwd 1024x1024->1024", 0, 1024, 1024, 1024, False),
    ("linear fwd 65x25088->512 (resnet projection)", 0, 65, 25088, 512, True),
    ("linear bwd 65x25088->512", 1, 65, 25088, 512, True),
    ("linear fwd 4096x4096->4096", 0, 4096, 4096, 4096, True),
    ("relu fwd 105x64x42x42", 2, 105 * 64, 42 * 42, 0, False),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"device: torch {torch.__version__} on {name}")
    print(f"{'case':46s} {'median s':>12s} {'rate':>12s}")
    g = torch.Generator().manual_seed(0)
    for cname, kind, rows, n_in, n_out, big in CASES:
        if a.quick and big:
            continue
        x = (torch.rand(rows, n_in, generator=g) * 2 - 1).to(dev)
        if kind == 2:
            def run():
                return torch.relu(x)
            work, unit = 2.0 * rows * n_in * 4, "GB/s"
        else:
            w = (torch.rand(n_out, n_in, generator=g) * 2 - 1).to(dev)
            b = (torch.rand(n_out, generator=g) * 2 - 1).to(dev)
            dy = F.linear(x, w, b)
            if kind == 0:
                def run():
                    return F.linear(x, w, b)
                work = 2.0 * rows * n_in * n_out
            else:
                dw = torch.zeros_like(w)
                db = torch.zeros_like(b)

                def run():
                    dx = dy @ w
                    dw.add_(dy.t() @ x)
                    db.add_(dy.sum(0))
                    return dx
                work = 4.0 * rows * n_in * n_out
            unit = "GFLOP/s"
        run()
        sync()
        times = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            run()
            sync()
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        print(f"{cname:46s} {med:12.6f} {work / med / 1e9:7.1f} {unit}", flush=True)


if __name__ == "__main__":
    main()
