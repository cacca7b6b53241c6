"""Writing PyTorch fixtures as safetensors without the safetensors package (Debian has none):
8-byte little-endian header length, JSON header, F32 data. The header is padded with spaces to
a multiple of 8 and keys are written in sorted order, so the same tensors give the same bytes.
"""
import json
import struct

import torch


def save(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous().cpu()
        raw = t.numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    text += b" " * ((-len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def generator(seed):
    return torch.Generator().manual_seed(seed)


def uniform(gen, *shape, lo=-1.0, hi=1.0):
    return torch.rand(*shape, generator=gen, dtype=torch.float32) * (hi - lo) + lo


def grads(out, dy, *inputs):
    """Autograd gradients of sum(out * dy) with respect to each input."""
    return torch.autograd.grad(out, inputs, dy)
