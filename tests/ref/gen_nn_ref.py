#!/usr/bin/python3
"""gen_nn_ref.py — PyTorch reference fixtures for the nn ops (conv2d, upsample2x, avg_pool2d,
group_norm, layer_norm, multi-head attention) -> tests/ref/nn_ref.h.

Run from the repository root:  /usr/bin/python3 tests/ref/gen_nn_ref.py
Inputs and output gradients dy come from a seeded torch.Generator (U(-1, 1), float32) and
are written next to the outputs and the input gradients (autograd), so the C test never needs to reproduce PyTorch's RNG. References are computed in
float64 from the float32 inputs, then rounded to float32: the C side is compared with
atol 1e-5, rtol 1e-4 against the exact answer, not against PyTorch's float32 rounding."""
import math
import os

import torch
import torch.nn.functional as F

gen = torch.Generator().manual_seed(20240601)


def rand(*shape, offset=0.0):
    return (torch.rand(*shape, generator=gen, dtype=torch.float32) * 2 - 1 + offset).float()


out = []


def arr(name, t):
    vals = t.detach().to(torch.float32).reshape(-1).tolist()
    body = ",\n".join(
        "    " + ", ".join("%.9g" % v for v in vals[i:i + 8]) for i in range(0, len(vals), 8))
    out.append("static const float %s[%d] = {\n%s\n};" % (name, len(vals), body))
    return name


def f64(t):
    return None if t is None else t.double().requires_grad_(True)


def run(fn, *ins):
    """Output and input gradients of fn in float64, for a random output gradient dy."""
    leaves = [f64(t) for t in ins]
    y = fn(*leaves)
    dy = rand(*y.shape)
    y.backward(dy.double())
    return y, dy, [None if t is None else t.grad for t in leaves]


def opt(name, t):
    return "NULL" if t is None else arr(name, t)


# ------------------------------------------------------------------ conv2d
convs = []
for (name, N, C, H, W, O, kh, kw, stride, pad, bias) in [
        ("k3s1p1", 2, 3, 5, 6, 4, 3, 3, 1, 1, True),
        ("k3s2p1", 2, 3, 6, 5, 4, 3, 3, 2, 1, True),
        ("k3s2p0_nobias", 1, 2, 7, 7, 3, 3, 3, 2, 0, False),
        ("k1s1p0", 2, 5, 3, 4, 3, 1, 1, 1, 0, True),
        ("k1s2p0", 1, 3, 5, 5, 2, 1, 1, 2, 0, True),
        ("k1x3s1p1", 1, 2, 4, 5, 3, 1, 3, 1, 1, True)]:
    x, w = rand(N, C, H, W), rand(O, C, kh, kw)
    b = rand(O) if bias else None
    y, dy, (dx, dw, db) = run(lambda x_, w_, b_: F.conv2d(x_, w_, b_, stride=stride, padding=pad),
                              x, w, b)
    p = "conv_" + name
    convs.append('    {"%s", %d, %d, %d, %d, %d, %d, %d, %d, %d, %s, %s, %s, %s, %d, %d,\n'
                 '     %s, %s, %s, %s},' % (
        name, N, C, H, W, O, kh, kw, stride, pad, arr(p + "_x", x), arr(p + "_w", w),
        opt(p + "_b", b), arr(p + "_y", y), y.shape[2], y.shape[3], arr(p + "_dy", dy),
        arr(p + "_dx", dx), arr(p + "_dw", dw), opt(p + "_db", db)))

# ------------------------------------------------------------------ upsample, avg pool
x = rand(2, 3, 2, 3)
y, dy, (dx,) = run(lambda x_: F.interpolate(x_, scale_factor=2, mode="nearest"), x)
arr("upsample_x", x)
arr("upsample_y", y)
arr("upsample_dy", dy)
arr("upsample_dx", dx)
pools = []
for (name, shape, k) in [("k2", (2, 2, 4, 6), 2), ("k3_floor", (1, 3, 7, 8), 3)]:
    x = rand(*shape)
    y, dy, (dx,) = run(lambda x_: F.avg_pool2d(x_, k), x)
    p = "pool_" + name
    pools.append('    {"%s", %d, %d, %d, %d, %d, %s, %s, %s, %s},' % (
        name, *shape, k, arr(p + "_x", x), arr(p + "_y", y), arr(p + "_dy", dy),
        arr(p + "_dx", dx)))

# ------------------------------------------------------------------ group norm
gns = []
for (name, shape, G, affine_w, affine_b, eps, offset) in [
        ("g2", (2, 4, 3, 3), 2, True, True, 1e-5, 0.0),
        ("g3_3d_nobias", (2, 6, 5), 3, True, False, 1e-5, 0.0),
        ("gC", (3, 4, 2, 2), 4, True, True, 1e-5, 0.0),
        ("g1_noaffine", (2, 4, 3, 3), 1, False, False, 1e-5, 0.0),
        ("g2_offset", (2, 4, 4, 4), 2, True, True, 1e-6, 10.0)]:
    x = rand(*shape, offset=offset)
    C = shape[1]
    w = rand(C) if affine_w else None
    b = rand(C) if affine_b else None
    y, dy, (dx, dw, db) = run(lambda x_, w_, b_: F.group_norm(x_, G, w_, b_, eps), x, w, b)
    p = "gn_" + name
    dims = list(shape) + [1] * (4 - len(shape))
    gns.append('    {"%s", %d, {%s}, %d, %g, %s, %s, %s, %s,\n     %s, %s, %s, %s},' % (
        name, len(shape), ", ".join(map(str, dims)), G, eps, arr(p + "_x", x),
        opt(p + "_w", w), opt(p + "_b", b), arr(p + "_y", y), arr(p + "_dy", dy),
        arr(p + "_dx", dx), opt(p + "_dw", dw), opt(p + "_db", db)))

# ------------------------------------------------------------------ layer norm
lns = []
for (name, shape, affine_w, affine_b, eps) in [
        ("3d", (3, 4, 6), True, True, 1e-5),
        ("2d_nobias", (5, 8), True, False, 1e-5),
        ("noaffine", (2, 7), False, False, 1e-6)]:
    x = rand(*shape)
    D = shape[-1]
    w = rand(D) if affine_w else None
    b = rand(D) if affine_b else None
    y, dy, (dx, dw, db) = run(lambda x_, w_, b_: F.layer_norm(x_, (D,), w_, b_, eps), x, w, b)
    p = "ln_" + name
    dims = list(shape) + [1] * (4 - len(shape))
    lns.append('    {"%s", %d, {%s}, %g, %s, %s, %s, %s,\n     %s, %s, %s, %s},' % (
        name, len(shape), ", ".join(map(str, dims)), eps, arr(p + "_x", x),
        opt(p + "_w", w), opt(p + "_b", b), arr(p + "_y", y), arr(p + "_dy", dy),
        arr(p + "_dx", dx), opt(p + "_dw", dw), opt(p + "_db", db)))


# ------------------------------------------------------------------ attention
def mha(q, k, v, heads):
    B, T, C = q.shape
    Dh = C // heads
    split = lambda t: t.reshape(B, T, heads, Dh).transpose(1, 2)   # (B, heads, T, Dh)
    s = split(q) @ split(k).transpose(-1, -2) / math.sqrt(Dh)
    o = torch.softmax(s, dim=-1) @ split(v)
    return o.transpose(1, 2).reshape(B, T, C)


atts = []
for (name, B, T, C, heads) in [("h2", 2, 5, 6, 2), ("h1", 2, 7, 4, 1), ("h4", 1, 3, 8, 4)]:
    q, k, v = rand(B, T, C), rand(B, T, C), rand(B, T, C)
    q = q * 2   # sharper softmax rows
    y, dy, (dq, dk, dv) = run(lambda q_, k_, v_: mha(q_, k_, v_, heads), q, k, v)
    p = "attn_" + name
    atts.append('    {"%s", %d, %d, %d, %d, %s, %s, %s, %s,\n     %s, %s, %s, %s},' % (
        name, B, T, C, heads, arr(p + "_q", q), arr(p + "_k", k), arr(p + "_v", v),
        arr(p + "_y", y), arr(p + "_dy", dy), arr(p + "_dq", dq), arr(p + "_dk", dk),
        arr(p + "_dv", dv)))

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "nn_ref.h"), "w") as f:
    f.write("/* nn_ref.h — generated by tests/ref/gen_nn_ref.py (torch %s); do not edit. */\n"
            % torch.__version__)
    f.write("#ifndef UG_NN_REF_H\n#define UG_NN_REF_H\n#include <stddef.h>\n\n")
    f.write("\n".join(out) + "\n\n")
    f.write("typedef struct { const char *name; int N, C, H, W, O, kh, kw, stride, pad;\n"
            "    const float *x, *w, *b, *y; int Ho, Wo; const float *dy, *dx, *dw, *db; } nn_ref_conv;\n")
    f.write("static const nn_ref_conv nn_ref_convs[] = {\n%s\n};\n\n" % "\n".join(convs))
    f.write("typedef struct { const char *name; int N, C, H, W, k;\n"
            "    const float *x, *y, *dy, *dx; }"
            " nn_ref_pool;\n")
    f.write("static const nn_ref_pool nn_ref_pools[] = {\n%s\n};\n\n" % "\n".join(pools))
    f.write("typedef struct { const char *name; int ndim; int shape[4]; int groups; double eps;\n"
            "    const float *x, *w, *b, *y, *dy, *dx, *dw, *db; } nn_ref_gn;\n")
    f.write("static const nn_ref_gn nn_ref_gns[] = {\n%s\n};\n\n" % "\n".join(gns))
    f.write("typedef struct { const char *name; int ndim; int shape[4]; double eps;\n"
            "    const float *x, *w, *b, *y, *dy, *dx, *dw, *db; } nn_ref_ln;\n")
    f.write("static const nn_ref_ln nn_ref_lns[] = {\n%s\n};\n\n" % "\n".join(lns))
    f.write("typedef struct { const char *name; int B, T, C, heads;\n"
            "    const float *q, *k, *v, *y, *dy, *dq, *dk, *dv; }"
            " nn_ref_attn;\n")
    f.write("static const nn_ref_attn nn_ref_attns[] = {\n%s\n};\n\n" % "\n".join(atts))
    f.write("#endif\n")
