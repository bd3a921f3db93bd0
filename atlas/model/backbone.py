"""2D backbone: a ResNet encoder with a feature pyramid, giving features at stride 4.

Parameter names follow torchvision's ResNet (``conv1``, ``bn1``, ``layer1.0.conv1`` ...),
so a torchvision state dict (``resnet18-*.pth``, ``resnet50-*.pth``) loads with
:meth:`ResNetFPN.load_torchvision` when ``width`` is 64 (torchvision's). A smaller
``width`` scales every stage's channels: the same topology, cheaper on a CPU, trained
from scratch.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# ImageNet statistics, the normalisation torchvision's weights expect.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)

BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.downsample = _shortcut(in_ch, ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, ch: int, stride: int) -> None:
        super().__init__()
        out_ch = ch * self.expansion
        self.conv1 = nn.Conv2d(in_ch, ch, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, stride, 1, bias=False)  # stride here, as torchvision
        self.bn2 = nn.BatchNorm2d(ch)
        self.conv3 = nn.Conv2d(ch, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.downsample = _shortcut(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


def _shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))


class ResNetFPN(nn.Module):
    """ResNet-``depth`` encoder (18, 34, 50, 101) and a top-down feature pyramid.

    forward: images (N, 3, H, W) float RGB in [0, 1] -> features (N, out_channels,
    ceil(H/4), ceil(W/4)), the pyramid's finest level (stride 4).
    width: channels of the first stage (64 in torchvision); out_channels: C.
    """

    def __init__(self, depth: int = 18, width: int = 64, out_channels: int = 32) -> None:
        super().__init__()
        if depth not in BLOCKS:
            raise ValueError(f"ResNet depth must be one of {sorted(BLOCKS)}, got {depth}")
        block = Bottleneck if depth >= 50 else BasicBlock
        self.depth, self.width, self.out_channels = depth, width, out_channels
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        in_ch = width
        stage_channels = []
        for i, n in enumerate(BLOCKS[depth]):
            ch = width * 2**i
            blocks = []
            for j in range(n):
                blocks.append(block(in_ch, ch, 2 if (j == 0 and i > 0) else 1))
                in_ch = ch * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            stage_channels.append(in_ch)
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in stage_channels)
        self.smooth = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)

    def encoder_keys(self) -> set[str]:
        """State-dict keys of the ResNet encoder (the part torchvision weights cover)."""
        return {k for k in self.state_dict() if not k.startswith(("lateral.", "smooth."))}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - self.mean) / self.std
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, 3, 2, 1)
        stages = []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            stages.append(x)
        top = self.lateral[3](stages[3])
        for i in (2, 1, 0):
            lateral = self.lateral[i](stages[i])
            top = lateral + F.interpolate(top, size=lateral.shape[-2:], mode="nearest")
        return self.smooth(top)

    def load_torchvision(self, state: dict[str, torch.Tensor] | str | Path) -> None:
        """Load a torchvision ResNet state dict (or a ``.pth`` file of one) into the
        encoder. Its classifier (``fc.*``) is dropped; any other missing or unexpected
        key, or a shape mismatch, is an error naming it."""
        source = str(state) if isinstance(state, str | Path) else "state dict"
        if isinstance(state, str | Path):
            state = torch.load(state, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        expected = self.encoder_keys()
        missing = sorted(expected - set(state))
        unexpected = sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(
                f"{source}: not a torchvision resnet{self.depth} (width {self.width}): "
                f"missing {missing[:4]}, unexpected {unexpected[:4]}"
            )
        own = self.state_dict()
        for k, v in state.items():
            if own[k].shape != v.shape:
                raise ValueError(
                    f"{source}: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}"
                )
        self.load_state_dict(state, strict=False)
