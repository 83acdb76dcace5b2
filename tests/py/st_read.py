#!/usr/bin/python3
"""st_read.py — an independent reader used by tests/test_io.c to check files unigen wrote.

    st_read.py FILE...
Reads each .safetensors file (with numpy + json + struct only: the `safetensors` package is not a
dependency) or .npy file (numpy.load, the tensor named by its path), and prints one line per tensor
    tensor<TAB>name<TAB>DTYPE<TAB>d0,d1,...<TAB>v0 v1 ...
(values as Python repr, exact for every float32/float64) and one line per metadata entry
    meta<TAB>key<TAB>value (JSON-quoted)
Exits non-zero, with a message, on anything malformed.
"""
import json
import struct
import sys

import numpy as np

NP_OF = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
         "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}
ST_OF = {np.dtype(v): k for k, v in NP_OF.items()}


def values(a):
    flat = a.reshape(-1)
    if a.dtype.kind == "f":
        return " ".join(repr(float(x)) for x in flat)
    return " ".join(str(int(x)) for x in flat)


def emit(name, st_dtype, a):
    print("tensor\t%s\t%s\t%s\t%s" % (name, st_dtype, ",".join(str(d) for d in a.shape),
                                      values(a)))


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    assert 8 + n <= len(buf), "header beyond the file"
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = buf[8 + n:]
    end_max = 0
    for name, info in header.items():
        if name == "__metadata__":
            for k, v in info.items():
                assert isinstance(v, str), "metadata value not a string"
                print("meta\t%s\t%s" % (k, json.dumps(v)))
            continue
        assert set(info) == {"dtype", "shape", "data_offsets"}, info
        b, e = info["data_offsets"]
        dt = np.dtype(NP_OF[info["dtype"]])
        shape = tuple(info["shape"])
        assert e - b == int(np.prod(shape, dtype=np.int64)) * dt.itemsize, name
        end_max = max(end_max, e)
        a = np.frombuffer(data[b:e], dtype=dt).reshape(shape)
        emit(name, info["dtype"], a)
    assert end_max == len(data), "data area not covered"


def read_npy(path):
    a = np.load(path, allow_pickle=False)
    emit(path, ST_OF[a.dtype], a)


def main():
    for path in sys.argv[1:]:
        if path.endswith(".npy"):
            read_npy(path)
        else:
            read_safetensors(path)


if __name__ == "__main__":
    main()
