#!/usr/bin/python3
"""Fixture for tests/test_ar.c: the peer's own MADE (../shared/peers/made.py, imported, not
copied) evaluated on a few binary vectors, so the C preset (net = made, one mask, natural order,
no direct connections) can be compared with it.

The peer's D and H are module globals; two small networks are built by setting them before
MADE() (a: D 20, H 7, fewer hidden units than inputs; b: D 10, H 24, more), with PyTorch's
default init from torch.manual_seed. Stored per network <p> in made_ref.safetensors:
  <p>.fc1.weight, <p>.fc1.bias, <p>.fc2.weight, <p>.fc2.bias   F32, the peer's names and shapes
  <p>.x     (N, D) F32, binary vectors
  <p>.nll   (N)    F64, the peer's per-image NLL (made.nll: BCE with logits summed over pixels),
                   evaluated in float64 from the stored float32 weights
and, for the full-size preset (D 784, H 500), the hidden degrees the peer's mask1 encodes
(hidden unit k sees inputs 1..m_k, so m_k = mask1[k].sum()), checked against mask2 here:
  deg784_500  (500) I32

Run: /usr/bin/python3 tests/ref/gen_made_ref.py [--peer PATH]   (writes next to this script)
"""
import argparse
import importlib.util
import json
import os
import struct
import sys

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--peer", default=os.path.join(here, "../../../shared/peers/made.py"))
args = ap.parse_args()

sys.argv = [args.peer]          # the peer parses its own (default) arguments on import
spec = importlib.util.spec_from_file_location("made_peer", args.peer)
peer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peer)

tensors = {}


def build(D, H, seed):
    peer.D, peer.H = D, H
    torch.manual_seed(seed)
    return peer.MADE()


for prefix, D, H, n in (("a", 20, 7, 6), ("b", 10, 24, 5)):
    model = build(D, H, seed=len(prefix) + D)
    g = torch.Generator().manual_seed(D * 100 + H)
    x = torch.bernoulli(torch.full((n, D), 0.5), generator=g)
    x[0] = 0
    x[1] = 1
    with torch.no_grad():
        nll64 = peer.nll(model.double(), x.double()).numpy()
    model.float()
    for name, p in model.named_parameters():
        tensors[f"{prefix}.{name}"] = p.detach().numpy().astype(np.float32)
    tensors[f"{prefix}.x"] = x.numpy().astype(np.float32)
    tensors[f"{prefix}.nll"] = nll64.astype(np.float64)

big = build(784, 500, seed=0)
m = big.mask1.sum(1).to(torch.int64)
d = torch.arange(1, 785)
assert torch.equal(big.mask1, (m[:, None] >= d[None, :]).float())
assert torch.equal(big.mask2, (d[:, None] > m[None, :]).float())
tensors["deg784_500"] = m.numpy().astype(np.int32)

# safetensors by hand: 8-byte little-endian header length, JSON header, raw little-endian data.
dt = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int32): "I32"}
header, blobs, off = {"__metadata__": {"source": "tests/ref/gen_made_ref.py"}}, [], 0
for name, a in tensors.items():
    b = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
    header[name] = {"dtype": dt[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
with open(os.path.join(here, "made_ref.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
print("wrote made_ref.safetensors:", ", ".join(f"{k} {list(v.shape)}" for k, v in tensors.items()))
