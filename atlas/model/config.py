"""Model settings as dataclasses (an unknown key is a TypeError naming it) and the
builder that turns them into an :class:`ATLASNet`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from atlas.model.atlas_net import ATLASNet
from atlas.model.backbone import ResNetFPN


@dataclass
class BackboneConfig:
    """depth: ResNet depth (18, 34, 50, 101); width: first-stage channels (64 to load
    torchvision weights); out_channels: feature channels C; weights: optional path to
    a torchvision ResNet state dict."""

    depth: int = 18
    width: int = 64
    out_channels: int = 32
    weights: str | None = None


@dataclass
class NetConfig:
    """channels: 3D network channels per scale, finest first; blocks: residual blocks
    per scale; fine_blocks: at the finest scale (default ``blocks``); prior: ``stereo``
    or ``none``; feature_mode: ``bilinear`` or ``nearest``; semantic_classes: 0 (off)
    or e.g. 41 for NYU40; view_chunk: views per backbone pass; color_variance: one more
    input channel, the standard deviation of the views' colours at each voxel
    (:mod:`atlas.model.photo_consistency`)."""

    channels: tuple[int, int, int] = (16, 32, 64)
    blocks: int = 1
    fine_blocks: int | None = None
    prior: str = "stereo"
    feature_mode: str = "bilinear"
    semantic_classes: int = 0
    view_chunk: int = 8
    color_variance: bool = False


@dataclass
class ModelConfig:
    """The whole architecture: voxel_sizes (metres, finest first, each twice the
    previous) are the scales the 3D network predicts."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    net: NetConfig = field(default_factory=NetConfig)
    voxel_sizes: tuple[float, float, float] = (0.04, 0.08, 0.16)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """From plain dicts; unknown keys raise a TypeError naming them."""
        d = dict(d)
        backbone = BackboneConfig(**d.pop("backbone", {}))
        net_d = dict(d.pop("net", {}))
        if "colour_variance" in net_d:  # the key's spelling in model files before 2026-12
            net_d["color_variance"] = net_d.pop("colour_variance")
        net = NetConfig(**net_d)
        net.channels = tuple(net.channels)
        cfg = cls(backbone=backbone, net=net, **d)
        cfg.voxel_sizes = tuple(float(v) for v in cfg.voxel_sizes)
        for a, b in zip(cfg.voxel_sizes, cfg.voxel_sizes[1:], strict=False):
            if abs(b - 2 * a) > 1e-9:
                raise ValueError(
                    f"model voxel_sizes must double at each scale, got {cfg.voxel_sizes}"
                )
        return cfg

    def to_dict(self) -> dict:
        d = asdict(self)
        d["net"]["channels"] = list(d["net"]["channels"])
        d["voxel_sizes"] = list(d["voxel_sizes"])
        return d


def build_model(cfg: ModelConfig, load_backbone_weights: bool = True) -> ATLASNet:
    b = cfg.backbone
    backbone = ResNetFPN(b.depth, b.width, b.out_channels)
    if b.weights and load_backbone_weights:
        backbone.load_torchvision(b.weights)
    n = cfg.net
    return ATLASNet(
        backbone,
        n.channels,
        n.blocks,
        n.prior,
        n.feature_mode,
        n.semantic_classes,
        n.view_chunk,
        n.fine_blocks,
        n.color_variance,
    )
