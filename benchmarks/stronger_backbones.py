"""What a stronger backbone costs here: ViT-S/14 (DINOv2-small's shape) and ConvNeXt-T beside Lite0/Lite2.

Random weights (the same compute as the real ones), written as PyTorch modules with the published
shapes, exported once to ONNX and run through the ``onnx:`` route: the same feature engine
(OpenVINO) as every backbone. Lite0 and Lite2 are the built-in Keras backbones, random weights too.
"""

from __future__ import annotations

import torch
from torch import nn


class VisionTransformer(nn.Module):
    """ViT with a CLS token and pre-norm blocks: ViT-S/14 is patch 14, width 384, depth 12, 6 heads."""

    def __init__(self, size: int = 224, patch: int = 14, dim: int = 384, depth: int = 12, heads: int = 6):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, 1 + (size // patch) ** 2, dim) * 0.02)
        block = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(block, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls + torch.zeros_like(tokens[:, :1]), tokens], 1) + self.pos
        return self.norm(self.blocks(tokens))


class _ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.scale = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        return x + (self.scale * self.mlp(self.norm(y))).permute(0, 3, 1, 2)


class _ChannelNorm(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    """ConvNeXt; ConvNeXt-T is depths (3, 3, 9, 3), widths (96, 192, 384, 768): (N, 3, S, S) -> (N, 768, S/32, S/32)."""

    def __init__(self, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, dims[0], 4, 4), _ChannelNorm(dims[0], eps=1e-6)]
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            if i:
                layers += [_ChannelNorm(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], dim, 2, 2)]
            layers += [_ConvNeXtBlock(dim) for _ in range(depth)]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)
