"""The deterministic weight pattern of lib/nn/params.c (fcl_pattern_value), vectorised:
element i of a tensor seeded `seed` is scale*(2u - 1), u = top 24 bits of
splitmix64(seed*2^32 + i) / 2^24, computed in float64 and rounded to float32 as the C code does.
Fills large weights identically on both sides without committing them."""
import numpy as np
import torch


def pattern(seed, shape, scale):
    n = int(np.prod(shape)) if len(shape) else 1
    with np.errstate(over="ignore"):
        z = (np.uint64(seed) << np.uint64(32)) + np.arange(n, dtype=np.uint64)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float64) / 16777216.0
    scale = np.float64(np.float32(scale))  # the C side takes scale as a float
    return torch.from_numpy((scale * (2.0 * u - 1.0)).astype(np.float32)).reshape(shape)


if __name__ == "__main__":
    import os
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from fixture import save
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures")
    save(f"{out}/pattern.safetensors",
         {"seed1_scale1": pattern(1, (3, 5), 1.0), "seed7_scale0.05": pattern(7, (64,), 0.05),
          "seed4294967295_scale2": pattern(4294967295, (9,), 2.0)},
         {"what": "fcl_pattern_value known answers"})
    print("wrote pattern.safetensors")
