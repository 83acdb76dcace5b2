#!/usr/bin/env python3
"""gen.py — writes the malformed-file corpus for tests/test_io_malformed.c (python3 stdlib only).

Each case is a small .safetensors or .npy file plus the status unigen must return (FORMAT,
UNSUPPORTED, IO, or OK for the well-formed controls) and a fragment its error message must
contain. The table goes to MANIFEST (tab-separated: file, status, fragment). Run from anywhere:
    python3 tests/malformed/gen.py
"""
import gzip
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
cases = []


def add(name, data, status, fragment=""):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    cases.append((name, status, fragment))


# ------------------------------------------------------------------ safetensors
def st_raw(header_bytes, data=b"", hlen=None):
    n = len(header_bytes) if hlen is None else hlen
    return struct.pack("<Q", n) + header_bytes + data


def st(header_text, data=b""):
    return st_raw(header_text.encode("utf-8"), data)


def ent(dtype="F32", shape=(1,), off=(0, 4)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(off)}


def stj(obj, data=b""):
    return st(json.dumps(obj), data)


ONE = struct.pack("<f", 1.5)

add("st_empty.safetensors", b"", "FORMAT", "expected at least 8 bytes")
add("st_short.safetensors", b"\x05\x00\x00", "FORMAT", "expected at least 8 bytes")
add("st_hlen_beyond_file.safetensors", st_raw(b"{}", hlen=1000), "FORMAT",
    "header beyond the end of the file")
add("st_hlen_too_large.safetensors", st_raw(b"{}", hlen=100000001), "FORMAT", "header too large")
add("st_hlen_max_u64.safetensors", st_raw(b"{}", hlen=2**64 - 1), "FORMAT", "header too large")
add("st_not_json.safetensors", st("hello world!"), "FORMAT", "expected a JSON object starting")
add("st_bad_json.safetensors", st("{not json at all}"), "FORMAT", "expected well-formed JSON")
add("st_array_root.safetensors", st("[1, 2, 3]"), "FORMAT", "expected a JSON object starting")
add("st_truncated_json.safetensors",
    st('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]'), "FORMAT",
    "expected well-formed JSON")
add("st_trailing_after_json.safetensors", st('{} x'), "FORMAT",
    "expected only spaces after the JSON object")
add("st_bad_utf8.safetensors", st_raw(b'{"\xff":{}}'), "FORMAT", "expected UTF-8")
add("st_nul_in_header.safetensors", st_raw(b'{"a\x00":{}}'), "FORMAT", "control byte")
add("st_entry_not_object.safetensors", stj({"a": [1, 2]}), "FORMAT",
    "tensor 'a': expected an object, found an array")
add("st_missing_dtype.safetensors",
    stj({"a": {"shape": [1], "data_offsets": [0, 4]}}, ONE), "FORMAT", 'missing field "dtype"')
add("st_missing_offsets.safetensors", stj({"a": {"dtype": "F32", "shape": [1]}}, ONE), "FORMAT",
    'missing field "data_offsets"')
add("st_extra_field.safetensors",
    stj({"a": dict(ent(), extra=1)}, ONE), "FORMAT", "expected only the fields")
add("st_duplicate_field.safetensors",
    st('{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', ONE), "FORMAT",
    'field "dtype" appears twice')
add("st_dtype_not_string.safetensors", stj({"a": ent(dtype=7)}, ONE), "FORMAT",
    "dtype: expected a string, found a number")
add("st_unknown_dtype.safetensors", stj({"a": ent(dtype="F33")}, ONE), "FORMAT",
    'unknown dtype: expected one of BOOL, U8')
add("st_unsupported_dtype.safetensors", stj({"a": ent(dtype="F8_E4M3", off=(0, 1))}, b"\0"),
    "UNSUPPORTED", "dtype F8_E4M3 is valid safetensors but not supported")
add("st_shape_not_list.safetensors",
    st('{"a":{"dtype":"F32","shape":1,"data_offsets":[0,4]}}', ONE), "FORMAT",
    "shape: expected a list, found a number")
add("st_negative_dim.safetensors", stj({"a": ent(shape=(-1,))}, ONE), "FORMAT",
    "shape[0]: expected a non-negative integer, found -1")
add("st_float_dim.safetensors", stj({"a": ent(shape=(1, 2.5), off=(0, 4))}, ONE), "FORMAT",
    "shape[1]: expected a non-negative integer, found 2.5")
add("st_float_dim_integral.safetensors",
    st('{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}', ONE), "FORMAT",
    "expected an integer (shape and data_offsets entries), found the number 1.0")
add("st_huge_dim.safetensors", st('{"a":{"dtype":"F32","shape":[1e300],"data_offsets":[0,4]}}', ONE),
    "FORMAT", "shape[0]: expected a non-negative integer, found 1.0000000000000001e+300")
add("st_dim_string.safetensors", stj({"a": ent(shape=("1",))}, ONE), "FORMAT",
    "shape[0]: expected a non-negative integer, found a string")
add("st_offsets_len3.safetensors", stj({"a": ent(off=(0, 4, 8))}, ONE), "FORMAT",
    "data_offsets: expected a list of 2 integers, found an array of 3")
add("st_offsets_negative.safetensors", stj({"a": ent(off=(-4, 0))}, ONE), "FORMAT",
    "data_offsets: expected non-negative integers, found -4")
add("st_begin_gt_end.safetensors", stj({"a": ent(shape=(0,), off=(4, 0))}, ONE), "FORMAT",
    "expected begin <= end, found [4, 0]")
add("st_end_beyond_data.safetensors", stj({"a": ent(shape=(2,), off=(0, 8))}, ONE), "FORMAT",
    "end 8 is beyond the data area of 4 bytes")
add("st_size_mismatch.safetensors", stj({"a": ent(shape=(2,), off=(0, 4))}, ONE), "FORMAT",
    "expected 8 bytes (2 elements of F32), found [0, 4] = 4 bytes: size mismatch")
add("st_overlap.safetensors",
    stj({"a": ent(shape=(2,), off=(0, 8)), "b": ent(shape=(2,), off=(4, 12))}, bytes(12)),
    "FORMAT", "tensor 'b': data_offsets: expected begin 8 (the end of tensor 'a'), found 4: overlap")
add("st_gap.safetensors",
    stj({"a": ent(off=(0, 4)), "b": ent(off=(8, 12))}, bytes(12)), "FORMAT",
    "expected begin 4 (the end of tensor 'a'), found 8: gap between tensors")
add("st_gap_at_start.safetensors", stj({"a": ent(off=(4, 8))}, bytes(8)), "FORMAT",
    "expected begin 0 (the start of the data area), found 4: gap")
add("st_trailing_bytes.safetensors", stj({"a": ent()}, ONE + b"junk"), "FORMAT",
    "expected the tensors to cover all 8 bytes, found them covering 4: 4 trailing bytes")
add("st_duplicate_name.safetensors",
    st('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
       '"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', bytes(8)), "FORMAT",
    "duplicate tensor name 'a'")
add("st_meta_not_string.safetensors", stj({"__metadata__": {"epoch": 3}, "a": ent()}, ONE),
    "FORMAT", '__metadata__: key "epoch": expected a string value, found a number')
add("st_meta_not_object.safetensors", stj({"__metadata__": "x", "a": ent()}, ONE), "FORMAT",
    "__metadata__: expected an object of strings, found a string")
add("st_meta_duplicate_key.safetensors",
    st('{"__metadata__":{"k":"1","k":"2"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
       ONE), "FORMAT", '__metadata__: duplicate key "k"')
add("st_numel_overflow.safetensors", stj({"a": ent(shape=(2**40, 2**40), off=(0, 0))}), "FORMAT",
    "the element count overflows 64 bits")
add("st_bytes_overflow.safetensors", stj({"a": ent(dtype="F64", shape=(2**50, 2**12), off=(0, 0))}),
    "FORMAT", "byte size overflows 64 bits")
cases.append(("does_not_exist.safetensors", "IO", "cannot open"))   # no file on purpose

# Well-formed controls: each must open.
add("ok_st_empty.safetensors", st("{}"), "OK")
add("ok_st_padded.safetensors", st('{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}' + " " * 9,
                                   ONE), "OK")
add("ok_st_zero_size.safetensors",
    stj({"z": ent(shape=(0,), off=(0, 0)), "y": ent(shape=(2, 0), off=(0, 0)), "a": ent()}, ONE),
    "OK")
add("ok_st_unordered.safetensors",
    stj({"__metadata__": {"k": "v"}, "b": ent(off=(4, 8)), "a": ent(off=(0, 4))}, ONE + ONE), "OK")

# ------------------------------------------------------------------ npy
MAGIC = b"\x93NUMPY"


def npy(header, data=b"", version=(1, 0), hlen=None):
    h = header.encode("latin1") if isinstance(header, str) else header
    n = len(h) if hlen is None else hlen
    fmt = "<H" if version[0] == 1 else "<I"
    return MAGIC + bytes(version) + struct.pack(fmt, n) + h + data


def hdr(descr="'<f4'", fortran="False", shape="(3,)"):
    return "{'descr': %s, 'fortran_order': %s, 'shape': %s, }\n" % (descr, fortran, shape)


F3 = struct.pack("<3f", 1, 2, 3)

add("npy_short.npy", b"\x93NUM", "FORMAT", "expected at least 10 bytes")
add("npy_bad_magic.npy", b"\x93NUMPX" + npy(hdr(), F3)[6:], "FORMAT",
    "magic: expected \\x93NUMPY, found \\x93\\x4e\\x55\\x4d\\x50\\x58")
add("npy_text_file.npy", b"1.0 2.0 3.0\n", "FORMAT", "magic: expected")
add("npy_bad_version.npy", npy(hdr(), F3, version=(4, 0)), "UNSUPPORTED",
    "version: expected 1.0, 2.0 or 3.0, found 4.0")
add("npy_bad_minor.npy", npy(hdr(), F3, version=(1, 1)), "UNSUPPORTED", "found 1.1")
add("npy_hlen_beyond_file.npy", npy(hdr(), b"", hlen=4000), "FORMAT",
    "header beyond the end of the file")
add("npy_v2_hlen_beyond_file.npy", npy(hdr(), b"", version=(2, 0), hlen=2**32 - 1), "FORMAT",
    "header beyond the end of the file")
add("npy_fortran.npy", npy(hdr(fortran="True", shape="(3, 1)"), F3), "UNSUPPORTED",
    "fortran_order: expected False (C order), found True")
add("npy_fortran_bad_literal.npy", npy(hdr(fortran="Maybe"), F3), "FORMAT",
    "fortran_order: expected True or False")
add("npy_object.npy", npy(hdr(descr="'|O'"), bytes(24)), "UNSUPPORTED", "an object dtype")
add("npy_big_endian.npy", npy(hdr(descr="'>f4'"), F3), "UNSUPPORTED", "found '>f4' (big-endian)")
add("npy_complex.npy", npy(hdr(descr="'<c8'"), bytes(24)), "UNSUPPORTED",
    "found '<c8' (unsupported dtype)")
add("npy_unicode.npy", npy(hdr(descr="'<U5'"), bytes(60)), "UNSUPPORTED",
    "found '<U5' (unsupported dtype)")
add("npy_structured.npy", npy(hdr(descr="[('x', '<f4')]"), F3), "UNSUPPORTED", "structured dtype")
add("npy_missing_shape.npy", npy("{'descr': '<f4', 'fortran_order': False}\n", F3), "FORMAT",
    "missing key 'shape'")
add("npy_missing_descr.npy", npy("{'fortran_order': False, 'shape': (3,)}\n", F3), "FORMAT",
    "missing key 'descr'")
add("npy_unknown_key.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}",
                               F3), "FORMAT", "expected only the keys 'descr', 'fortran_order', "
    "'shape', found 'x'")
add("npy_duplicate_key.npy",
    npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", F3), "FORMAT",
    "key 'descr' appears twice")
add("npy_not_dict.npy", npy("[1, 2, 3]\n", F3), "FORMAT", "dict: expected '{'")
add("npy_unclosed_dict.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,)\n", F3),
    "FORMAT", "dict: expected ',' or '}', found the end of the header")
add("npy_unterminated_string.npy", npy("{'descr: '<f4'}", F3), "FORMAT",
    "after key 'descr: ': expected ':'")
add("npy_bad_shape.npy", npy(hdr(shape="(3, x)"), F3), "FORMAT",
    "shape[1]: expected a non-negative integer, found \"x)")
add("npy_shape_not_tuple.npy", npy(hdr(shape="[3]"), F3), "FORMAT", "shape: expected '('")
add("npy_shape_no_comma.npy", npy(hdr(shape="(3)"), F3), "FORMAT", "found (3) without the comma")
add("npy_shape_negative.npy", npy(hdr(shape="(-3,)"), F3), "FORMAT",
    "shape[0]: expected a non-negative integer, found \"-3,)")
add("npy_shape_float.npy", npy(hdr(shape="(3.0,)"), F3), "FORMAT", "shape: expected ',' or ')'")
add("npy_dim_too_big.npy", npy(hdr(shape="(99999999999999999999,)"), F3), "FORMAT",
    "found a larger integer")
add("npy_numel_overflow.npy", npy(hdr(shape="(1099511627776, 1099511627776)"), F3), "FORMAT",
    "the byte size overflows 64 bits")
add("npy_too_many_dims.npy", npy(hdr(shape="(1, 1, 1, 1, 1, 1, 3)"), F3), "UNSUPPORTED",
    "expected at most 6 dims")
add("npy_truncated.npy", npy(hdr(shape="(2, 3)"), F3), "FORMAT",
    "data: expected 24 bytes (6 elements of F32), found 12: truncated data")
add("npy_trailing.npy", npy(hdr(), F3 + b"xx"), "FORMAT", "found 14: trailing bytes after the data")
add("npy_garbage_after_dict.npy", npy(hdr() + "garbage", F3), "FORMAT",
    "expected only spaces after the dict")

cases.append(("does_not_exist.npy", "IO", "cannot open"))
add("npy_empty.npy", b"", "FORMAT", "expected at least 10 bytes")

add("ok_npy_v2.npy", npy(hdr(), F3, version=(2, 0)), "OK")
add("ok_npy_v3.npy", npy(hdr(), F3, version=(3, 0)), "OK")
add("ok_npy_reordered_no_comma.npy", npy('{"shape": (3,), "fortran_order": False, "descr": "<f4"}',
                                         F3), "OK")
add("ok_npy_scalar_f8.npy", npy(hdr(descr="'<f8'", shape="()"), struct.pack("<d", 2.5)), "OK")
add("ok_npy_u1.npy", npy(hdr(descr="'|u1'", shape="(2, 2)"), b"\x00\x01\x7f\xff"), "OK")

# ------------------------------------------------------------------ found by fuzzing (tests/fuzz/)
# Each case is the minimal form of an input a libFuzzer harness (scripts/fuzz.sh) crashed or
# misread; the file name prefix picks the reader in test_io_malformed.c.

# ckpt_*: ug_ckpt_load into the one-parameter model {"w": (1,)}. A wrong "format" was reported
# after the file (holding the string) was closed: a use-after-free under AddressSanitizer.
def ckpt(fmt):
    meta = {"__metadata__": {"format": fmt, "step": "3"}} if fmt is not None else {}
    return stj(dict(meta, w=ent()), ONE)


add("ckpt_bad_format.safetensors", ckpt("unigen-checkpoint-2"), "FORMAT",
    '__metadata__ "format" is "unigen-checkpoint-2", expected "unigen-checkpoint-1"')
add("ckpt_no_format.safetensors", ckpt(None), "FORMAT", '__metadata__ "format" is missing')
add("ok_ckpt.safetensors", ckpt("unigen-checkpoint-1"), "OK")


# *.idx, *.idx.gz: ug_idx_read. A 13-byte file announcing 2^32 - 1 bytes of data made the
# reader allocate 4 GiB before reading any (now the buffer grows with the data).
def idx(dims, data):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data


add("idx_claims_4gib.idx", idx([2**32 - 1], b"\1\2\3\4\5"), "FORMAT",
    "truncated: 5 data bytes, expected 4294967295")
add("idx_claims_4gib.idx.gz", gzip.compress(idx([65535, 65535], b"\0" * 9), mtime=0), "FORMAT",
    "truncated: 9 data bytes, expected 4294836225")
add("ok_idx.idx", idx([2, 3], bytes(range(6))), "OK")
add("ok_idx.idx.gz", gzip.compress(idx([3], b"abc"), mtime=0), "OK")


# *.png: ug_png_read. A 70-byte file announcing 100000 x 100000 pixels made the reader allocate
# 10 GB before libpng refused it.
def png(width, height, color, rows):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) +
            chunk(b"IEND", b""))


add("png_too_large.png", png(100000, 100000, 0, b"\0" * 64), "UNSUPPORTED",
    "IHDR: 100000 x 100000 pixels x 1 channels = 10000000000 bytes, expected at most")
add("ok_png_rgb.png", png(2, 2, 2, b"\0" + bytes(range(6)) + b"\0" + bytes(range(6, 12))), "OK")


# *.json: ug_gmm_load. Weights summing to infinity normalized to all zeros: a mixture with no
# mass that sampled and scored silently.
add("gmm_weights_sum_inf.json", b'{"weights": [1e308, 1e308], "means": [[0], [1]], "stds": [1, 1]}',
    "FORMAT", '"weights" sum to inf, expected a finite sum > 0')
add("ok_gmm.json", b'{"weights": [1, 3], "means": [[0, 1], [2, 3]], "stds": [0.5, 1]}', "OK")

with open(os.path.join(HERE, "MANIFEST"), "w") as f:
    f.write("# file\tstatus\tfragment the message must contain (generated by gen.py)\n")
    for name, status, frag in cases:
        assert "\t" not in frag and "\n" not in frag
        f.write("%s\t%s\t%s\n" % (name, status, frag))
print("wrote %d cases to %s" % (len(cases), HERE))
