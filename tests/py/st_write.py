#!/usr/bin/python3
"""st_write.py — files written by numpy for tests/test_io.c to read with unigen.

    st_write.py DIR
writes DIR/np.safetensors (a small numpy-only safetensors writer: header padded with spaces to
a multiple of 8, as the reference implementation does) and .npy files through numpy's own
writer. The values follow formulas that test_io.c recomputes:
    w_f32  (2, 3)   float32  arange(6) * 0.25 - 1
    b_f64  (4,)     float64  arange(4) / 3
    i64    (3,)     int64    [-5, 0, 2**40]
    i32    (2, 2)   int32    [[-1, 2], [3, -4]]
    u8     (5,)     uint8    [0, 1, 127, 200, 255]
    f16    (3,)     float16  [0.5, -2, 65504]
    scalar ()       float32  3.5
    empty  (0, 3)   float32
and metadata {"format": "numpy", "note": "ünïcode \"quoted\"\\n"}.
.npy: f32_234.npy (2,3,4) f4 arange(24)/8 - 1; f64_scalar.npy () f8 pi; i8_4.npy (4,) i8
[-3, -1, 0, 7]; u1_22.npy (2,2) u1 [[0, 9], [128, 255]]; f32_v2.npy version 2.0 (3,) f4
[1, 2, 3]; f32_fortran.npy (2,3) fortran order (must be refused).
"""
import json
import os
import struct
import sys

import numpy as np


def tensors():
    return [
        ("w_f32", np.arange(6, dtype=np.float32).reshape(2, 3) * np.float32(0.25) - np.float32(1)),
        ("b_f64", np.arange(4, dtype=np.float64) / 3),
        ("i64", np.array([-5, 0, 2**40], dtype=np.int64)),
        ("i32", np.array([[-1, 2], [3, -4]], dtype=np.int32)),
        ("u8", np.array([0, 1, 127, 200, 255], dtype=np.uint8)),
        ("f16", np.array([0.5, -2, 65504], dtype=np.float16)),
        ("scalar", np.array(3.5, dtype=np.float32)),
        ("empty", np.zeros((0, 3), dtype=np.float32)),
    ]


ST = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64", np.dtype("<i8"): "I64",
      np.dtype("<i4"): "I32", np.dtype("u1"): "U8", np.dtype("<f2"): "F16"}


def write_safetensors(path, items, meta):
    header = {"__metadata__": meta}
    blobs, off = [], 0
    for name, a in items:
        raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": ST[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    d = sys.argv[1]
    write_safetensors(os.path.join(d, "np.safetensors"), tensors(),
                      {"format": "numpy", "note": "ünïcode \"quoted\"\n"})
    np.save(os.path.join(d, "f32_234.npy"),
            np.arange(24, dtype=np.float32).reshape(2, 3, 4) / np.float32(8) - np.float32(1))
    np.save(os.path.join(d, "f64_scalar.npy"), np.array(np.pi))
    np.save(os.path.join(d, "i8_4.npy"), np.array([-3, -1, 0, 7], dtype=np.int64))
    np.save(os.path.join(d, "u1_22.npy"), np.array([[0, 9], [128, 255]], dtype=np.uint8))
    with open(os.path.join(d, "f32_v2.npy"), "wb") as f:
        np.lib.format.write_array(f, np.array([1, 2, 3], dtype=np.float32), version=(2, 0))
    np.save(os.path.join(d, "f32_fortran.npy"),
            np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))


if __name__ == "__main__":
    main()
