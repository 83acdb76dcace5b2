#!/usr/bin/python3
"""convert_state_dict.py — a PyTorch state dict (torch.save(model.state_dict(), IN)) to a
safetensors file unigen reads: every tensor as float32 under its state-dict name, in order.

    /usr/bin/python3 tests/ref/convert_state_dict.py IN.pt OUT.safetensors [KEY=VALUE ...]

KEY=VALUE pairs go to __metadata__ (e.g. format=unigen-checkpoint-1 and config=<JSON> make it a
unigen checkpoint). The safetensors layout is written by hand (8-byte little-endian header size,
JSON header, raw data) so only torch is needed."""
import json
import struct
import sys

import torch


def convert(src, dst, meta=None):
    sd = torch.load(src, map_location="cpu")
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = dict(meta)
    for name, t in sd.items():
        b = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    convert(sys.argv[1], sys.argv[2], [a.split("=", 1) for a in sys.argv[3:]])
