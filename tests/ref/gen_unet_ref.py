#!/usr/bin/python3
"""gen_unet_ref.py — PyTorch reference for the U-Net (src/nn/unet.c) -> tests/ref/unet_ref.h.

Run from the repository root:  /usr/bin/python3 tests/ref/gen_unet_ref.py

The architecture below is ../shared/peers/unet.py's (that script parses arguments and trains at
import, so its module definitions are copied here), widened to the same knobs as ug_unet_cfg:
widths ch, groups, embedding sizes, heads, in_channels and an optional label embedding added to
the time embedding. It writes
  1. the (name, shape) list of the peer-exact network's state_dict (1,062,497 parameters), and
     of the same network with 10 classes;
  2. a forward + backward reference of a REDUCED network (ch 8/16/16, groups 4, emb 16, temb 32,
     3 classes, 1x12x12 input, batch 2). Its weights, input and output gradient follow a formula
     test_unet.c recomputes with the same libm (no weights stored):
        hash(i, j) = 2 frac(43758.5453 sin(12.9898 j + 78.233 i + 1)) - 1,
     parameter i (state_dict order), element j: weights (ndim >= 2) 1.5 hash / sqrt(fan_in),
     *norm*.weight 1 + 0.2 hash, other 1-D 0.2 hash; x = hash(1000, j); dy = hash(2000, j).
     The reference is computed in float64 from the float32-rounded values.
"""
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_embedding(t, dim, log_fmax):
    """In float32 as the peer (and ug_sinusoidal) compute it: the argument's rounding at t ~ 800
    is 5e-5, which a float64 embedding would count as a difference."""
    half = dim // 2
    step = torch.tensor(log_fmax, dtype=torch.float32) / (half - 1)   # ug_sinusoidal's order
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * step)
    a = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    def __init__(self, c, groups, heads):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, c)
        self.q = nn.Linear(c, c)
        self.k = nn.Linear(c, c)
        self.v = nn.Linear(c, c)
        self.proj = nn.Linear(c, c)

    def forward(self, x):
        b, c, hh, ww = x.shape
        nh, dh = self.heads, c // self.heads
        h = self.norm(x).reshape(b, c, hh * ww).transpose(1, 2)
        q, k, v = (t.reshape(b, hh * ww, nh, dh).transpose(1, 2) for t in (self.q(h), self.k(h), self.v(h)))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), dim=-1)
        o = (a @ v).transpose(1, 2).reshape(b, hh * ww, c)
        o = self.proj(o)
        return x + o.transpose(1, 2).reshape(b, c, hh, ww)


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class UNet(nn.Module):
    """peers/unet.py's UNet for in_ch=1, ch=(32,64,64), groups=8, emb=32, temb=128, heads=1."""

    def __init__(self, in_ch=1, ch=(32, 64, 64), groups=8, emb=32, temb=128, heads=1,
                 num_classes=0, log_fmax=-math.log(10000.0)):
        super().__init__()
        c0, c1, c2 = ch
        self.emb, self.log_fmax = emb, log_fmax
        R = lambda a, b: ResBlock(a, b, temb, groups)  # noqa: E731
        self.t1 = nn.Linear(emb, temb)
        self.t2 = nn.Linear(temb, temb)
        self.conv_in = nn.Conv2d(in_ch, c0, 3, padding=1)
        self.d0 = R(c0, c0)
        self.ds0 = Downsample(c0)
        self.d1 = R(c0, c1)
        self.ds1 = Downsample(c1)
        self.d2 = R(c1, c2)
        self.m1 = R(c2, c2)
        self.attn = AttnBlock(c2, groups, heads)
        self.m2 = R(c2, c2)
        self.u2a = R(c2 + c2, c2)
        self.u2b = R(c2 + c1, c2)
        self.us2 = Upsample(c2)
        self.u1a = R(c2 + c1, c1)
        self.u1b = R(c1 + c0, c1)
        self.us1 = Upsample(c1)
        self.u0a = R(c1 + c0, c0)
        self.u0b = R(c0 + c0, c0)
        self.norm_out = nn.GroupNorm(groups, c0)
        self.conv_out = nn.Conv2d(c0, in_ch, 3, padding=1)
        if num_classes:
            self.label_emb = nn.Embedding(num_classes + 1, temb)

    def forward(self, x, t, y=None):
        e = timestep_embedding(t, self.emb, self.log_fmax).to(x.dtype)
        temb = self.t2(F.silu(self.t1(e)))
        if hasattr(self, "label_emb"):
            temb = temb + self.label_emb(y)
        hs = [self.conv_in(x)]
        hs.append(self.d0(hs[-1], temb))
        hs.append(self.ds0(hs[-1]))
        hs.append(self.d1(hs[-1], temb))
        hs.append(self.ds1(hs[-1]))
        hs.append(self.d2(hs[-1], temb))
        h = self.m2(self.attn(self.m1(hs[-1], temb)), temb)
        h = self.u2a(torch.cat([h, hs.pop()], 1), temb)
        h = self.u2b(torch.cat([h, hs.pop()], 1), temb)
        h = self.us2(h)
        h = self.u1a(torch.cat([h, hs.pop()], 1), temb)
        h = self.u1b(torch.cat([h, hs.pop()], 1), temb)
        h = self.us1(h)
        h = self.u0a(torch.cat([h, hs.pop()], 1), temb)
        h = self.u0b(torch.cat([h, hs.pop()], 1), temb)
        return self.conv_out(F.silu(self.norm_out(h)))


def hash_vals(i, n):
    out = []
    for j in range(n):
        a = math.sin(12.9898 * j + 78.233 * i + 1.0) * 43758.5453
        out.append(2.0 * (a - math.floor(a)) - 1.0)
    return torch.tensor(out, dtype=torch.float64).float()


def fill_formula(model):
    for i, (name, p) in enumerate(model.state_dict().items()):
        h = hash_vals(i, p.numel()).double()
        if p.dim() >= 2:
            v = 1.5 * h / math.sqrt(p[0].numel())
        elif "norm" in name and name.endswith(".weight"):
            v = 1.0 + 0.2 * h
        else:
            v = 0.2 * h
        p.copy_(v.float().reshape(p.shape))


out = []


def arr(name, t):
    vals = t.detach().to(torch.float32).reshape(-1).tolist()
    body = ",\n".join(
        "    " + ", ".join("%.9g" % v for v in vals[i:i + 8]) for i in range(0, len(vals), 8))
    out.append("static const float %s[%d] = {\n%s\n};" % (name, len(vals), body))


def names(cname, model):
    rows = []
    for name, p in model.state_dict().items():
        dims = list(p.shape) + [0] * (4 - p.dim())
        rows.append('    {"%s", %d, {%s}}' % (name, p.dim(), ", ".join(map(str, dims))))
    out.append("static const unet_ref_param %s[%d] = {\n%s\n};" % (cname, len(rows), ",\n".join(rows)))
    out.append("#define %s_COUNT %dLL" % (cname.upper(), sum(p.numel() for p in model.parameters())))


if __name__ == "__main__":   # gen_unet_cfg_ref.py imports the modules above
    names("unet_ref_fmnist", UNet())
    names("unet_ref_fmnist_c10", UNet(num_classes=10))

    torch.set_grad_enabled(True)
    small = UNet(in_ch=1, ch=(8, 16, 16), groups=4, emb=16, temb=32, heads=1, num_classes=3)
    with torch.no_grad():
        fill_formula(small)
    names("unet_ref_small", small)
    B, C, H, W = 2, 1, 12, 12
    x32 = hash_vals(1000, B * C * H * W).reshape(B, C, H, W)
    dy32 = hash_vals(2000, B * C * H * W).reshape(B, C, H, W)
    t = torch.tensor([37.0, 812.0])
    y = torch.tensor([2, 3])
    small = small.double()
    x = x32.double().requires_grad_(True)
    o = small(x, t, y)
    o.backward(dy32.double())
    arr("unet_ref_small_out", o)
    arr("unet_ref_small_dx", x.grad)
    grads = ["t1.weight", "conv_in.weight", "d0.conv1.bias", "d1.skip.weight", "attn.q.weight",
             "attn.proj.bias", "m2.temb.weight", "u2b.norm1.weight", "us1.conv.weight",
             "u0b.conv2.bias", "norm_out.weight", "conv_out.weight", "label_emb.weight"]
    params = dict(small.named_parameters())
    rows = []
    for k, name in enumerate(grads):
        arr("unet_ref_small_g%d" % k, params[name].grad)
        rows.append('    {"%s", unet_ref_small_g%d, %d}' % (name, k, params[name].numel()))
    out.append("static const struct { const char *name; const float *g; int n; } unet_ref_small_grads[%d] = {\n%s\n};"
               % (len(rows), ",\n".join(rows)))

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "unet_ref.h")
    with open(path, "w") as f:
        f.write("/* unet_ref.h — generated by tests/ref/gen_unet_ref.py (torch %s); do not edit. */\n" % torch.__version__)
        f.write("#ifndef UG_UNET_REF_H\n#define UG_UNET_REF_H\n\n")
        f.write("typedef struct { const char *name; int ndim; long long shape[4]; } unet_ref_param;\n\n")
        f.write("\n\n".join(out))
        f.write("\n\n#endif\n")
    print("wrote", path)
