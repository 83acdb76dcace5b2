#!/usr/bin/python3
"""gen_unet_cfg_ref.py — PyTorch reference for the CONFIGURABLE U-Net (src/nn/unet.c, layout and
names in src/nn/unet.h) -> tests/ref/unet_cfg_ref.h.

Run from the repository root:  /usr/bin/python3 tests/ref/gen_unet_cfg_ref.py

UNetCfg below builds the improved-diffusion layout from base channels, multipliers, blocks per
level and attention resolutions with the blocks of gen_unet_ref.py (the peer's ResBlock,
AttnBlock, Downsample, Upsample). Before writing anything it checks that UNetCfg's defaults are
peers/unet.py's network: the same state_dict names, order and shapes as gen_unet_ref.UNet and,
with those weights loaded, the same output. It then writes, for a small non-preset network
(3x8x8 images, base 8, multipliers 1,2,3, 2 blocks per level, attention at 4 and 2, 2 heads,
groups 4, emb 8, temb 16, unconditional, batch 2):
  1. its state_dict (name, shape) list and parameter count;
  2. float64 forward output, input gradient and some parameter gradients, with the formula
     weights, input and output gradient of gen_unet_ref.py (test_unet_cfg.c recomputes them).
No dropout here: references are evaluation-mode networks.
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_unet_ref as g  # noqa: E402


class ResBlockAttn(g.ResBlock):
    """ResBlock X followed by its attention X.attn when built with heads > 0."""

    def __init__(self, cin, cout, temb, groups, heads):
        super().__init__(cin, cout, temb, groups)
        if heads:
            self.attn = g.AttnBlock(cout, groups, heads)

    def forward(self, x, temb):
        h = super().forward(x, temb)
        return self.attn(h) if hasattr(self, "attn") else h


class UNetCfg(nn.Module):
    def __init__(self, in_ch=1, height=28, base=32, mult=(1, 2, 2), blocks=1, attn_res=(),
                 groups=8, emb=32, temb=128, heads=1, num_classes=0,
                 log_fmax=-math.log(10000.0)):
        super().__init__()
        self.emb, self.log_fmax = emb, log_fmax
        self.t1 = nn.Linear(emb, temb)
        self.t2 = nn.Linear(temb, temb)
        self.conv_in = nn.Conv2d(in_ch, base, 3, padding=1)
        ch, skips, self.down, self.up = base, [base], [], []
        for lvl, m in enumerate(mult):
            a = heads if (height >> lvl) in attn_res else 0
            for i in range(blocks):
                name = "d%d" % lvl if i == 0 else "d%d%s" % (lvl, chr(ord("a") + i))
                setattr(self, name, ResBlockAttn(ch, base * m, temb, groups, a))
                ch = base * m
                skips.append(ch)
                self.down.append(name)
            if lvl < len(mult) - 1:
                setattr(self, "ds%d" % lvl, g.Downsample(ch))
                skips.append(ch)
                self.down.append("ds%d" % lvl)
        self.m1 = g.ResBlock(ch, ch, temb, groups)
        self.attn = g.AttnBlock(ch, groups, heads)
        self.m2 = g.ResBlock(ch, ch, temb, groups)
        for lvl in reversed(range(len(mult))):
            a = heads if (height >> lvl) in attn_res else 0
            for i in range(blocks + 1):
                name = "u%d%s" % (lvl, chr(ord("a") + i))
                setattr(self, name, ResBlockAttn(ch + skips.pop(), base * mult[lvl], temb, groups, a))
                ch = base * mult[lvl]
                self.up.append(name)
            if lvl > 0:
                setattr(self, "us%d" % lvl, g.Upsample(ch))
                self.up.append("us%d" % lvl)
        assert not skips
        self.norm_out = nn.GroupNorm(groups, ch)
        self.conv_out = nn.Conv2d(ch, in_ch, 3, padding=1)
        if num_classes:
            self.label_emb = nn.Embedding(num_classes + 1, temb)

    def forward(self, x, t, y=None):
        e = g.timestep_embedding(t, self.emb, self.log_fmax).to(x.dtype)
        temb = self.t2(F.silu(self.t1(e)))
        if hasattr(self, "label_emb"):
            temb = temb + self.label_emb(y)
        h = self.conv_in(x)
        hs = [h]
        for name in self.down:
            mod = getattr(self, name)
            h = mod(h) if name.startswith("ds") else mod(h, temb)
            hs.append(h)
        h = self.m2(self.attn(self.m1(h, temb)), temb)
        for name in self.up:
            mod = getattr(self, name)
            h = mod(h) if name.startswith("us") else mod(torch.cat([h, hs.pop()], 1), temb)
        return self.conv_out(F.silu(self.norm_out(h)))


def same_as_peer(peer, cfg):
    a, b = peer.state_dict(), cfg.state_dict()
    assert [(k, tuple(v.shape)) for k, v in a.items()] == [(k, tuple(v.shape)) for k, v in b.items()]
    cfg.load_state_dict(a)
    x = torch.randn(2, 1, 12, 12)
    t = torch.tensor([3.0, 700.0])
    y = torch.tensor([1, 0]) if hasattr(peer, "label_emb") else None
    with torch.no_grad():
        assert torch.equal(peer(x, t, y), cfg(x, t, y))


torch.manual_seed(0)
same_as_peer(g.UNet(), UNetCfg())
same_as_peer(g.UNet(num_classes=10), UNetCfg(num_classes=10))
same_as_peer(g.UNet(ch=(8, 16, 16), groups=4, emb=16, temb=32, num_classes=3),
             UNetCfg(height=12, base=8, groups=4, emb=16, temb=32, num_classes=3))
print("UNetCfg defaults == peers/unet.py's UNet (names, shapes, output)")

g.out.clear()
torch.set_grad_enabled(True)
net = UNetCfg(in_ch=3, height=8, base=8, mult=(1, 2, 3), blocks=2, attn_res=(4, 2), groups=4,
              emb=8, temb=16, heads=2)
with torch.no_grad():
    g.fill_formula(net)
g.names("unet_cfg_ref_params", net)
B, C, H, W = 2, 3, 8, 8
x32 = g.hash_vals(1000, B * C * H * W).reshape(B, C, H, W)
dy32 = g.hash_vals(2000, B * C * H * W).reshape(B, C, H, W)
t = torch.tensor([37.0, 812.0])
net = net.double()
x = x32.double().requires_grad_(True)
o = net(x, t)
o.backward(dy32.double())
g.arr("unet_cfg_ref_out", o)
g.arr("unet_cfg_ref_dx", x.grad)
grads = ["conv_in.weight", "d0b.conv2.weight", "d1.skip.weight", "d1.attn.q.weight",
         "d1b.attn.proj.bias", "ds1.conv.weight", "d2b.attn.norm.weight", "attn.k.weight",
         "u2c.attn.v.weight", "u2c.skip.bias", "us2.conv.bias", "u1a.attn.norm.bias",
         "u0c.conv1.bias", "conv_out.weight", "t2.weight"]
params = dict(net.named_parameters())
rows = []
for k, name in enumerate(grads):
    g.arr("unet_cfg_ref_g%d" % k, params[name].grad)
    rows.append('    {"%s", unet_cfg_ref_g%d, %d}' % (name, k, params[name].numel()))
g.out.append("static const struct { const char *name; const float *g; int n; } "
             "unet_cfg_ref_grads[%d] = {\n%s\n};" % (len(rows), ",\n".join(rows)))

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "unet_cfg_ref.h")
with open(path, "w") as f:
    f.write("/* unet_cfg_ref.h — generated by tests/ref/gen_unet_cfg_ref.py (torch %s); do not edit. */\n"
            % torch.__version__)
    f.write("#ifndef UG_UNET_CFG_REF_H\n#define UG_UNET_CFG_REF_H\n#include \"unet_ref.h\"\n\n")
    f.write("\n\n".join(g.out))
    f.write("\n\n#endif\n")
print("wrote", path, "(%d tensors, %d parameters)" % (len(net.state_dict()), sum(p.numel() for p in net.parameters())))
