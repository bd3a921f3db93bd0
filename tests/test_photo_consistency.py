"""The colour-variance input channel: a hand-computed value, voxels seen by fewer than
two views, and fine-tuning a model that lacks the channel."""

import logging

import torch

from atlas.model.checkpoint import save_model
from atlas.model.config import BackboneConfig, ModelConfig, NetConfig, build_model
from atlas.model.contract import assumed_contract
from atlas.model.photo_consistency import ColorVariance
from atlas.model.volume_net import VolumeNet
from atlas.training.lightning import ATLASModule


def test_color_std_matches_hand_computed_value():
    # a 2x2-pixel image, identity camera (f = 1, c = 0.5), and a 1x1x2 volume on the
    # optical axis at z = 1, 2: both views (same camera) see both voxels, a third view
    # (looking away, the camera flipped) sees neither
    K = torch.tensor([[1.0, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    facing = torch.cat([K, torch.zeros(3, 1)], 1)
    away = facing @ torch.diag(torch.tensor([1.0, 1.0, -1.0, 1.0]))
    projection = torch.stack([facing, facing, away])[None]
    colors = torch.tensor([[0.2, 0.4, 0.6], [0.4, 0.4, 0.2], [1.0, 0.0, 1.0]])
    images = colors[None, :, :, None, None].expand(1, 3, 3, 2, 2)
    volume = ColorVariance(torch.tensor([[0.0, 0.0, 1.0]]), 1.0, (1, 1, 2))
    for view in range(3):  # streamed one view at a time; the last one sees nothing
        volume.add(images[:, view : view + 1], projection[:, view : view + 1])
    # per channel variance of two values a, b: ((a - b) / 2)^2 -> 0.01, 0, 0.04
    expected = torch.full((1, 1, 1, 1, 2), (0.05 / 3) ** 0.5)
    torch.testing.assert_close(volume.std(), expected)

    one_view = ColorVariance(torch.tensor([[0.0, 0.0, 1.0]]), 1.0, (1, 1, 2))
    one_view.add(images[:, :1], projection[:, :1])
    # one view measures no agreement: the largest spread, not a perfect match
    assert (one_view.std() == 0.5).all()


def test_widened_network_computes_what_the_narrow_one_did():
    torch.manual_seed(0)
    narrow, wide = VolumeNet(5, (4, 8, 8)).eval(), VolumeNet(6, (4, 8, 8)).eval()
    state = narrow.state_dict()
    wide.load_state_dict(wide.widen_inputs(state))
    own = wide.state_dict()
    assert wide.widen_inputs(own) is own  # not narrower: returned as it is
    x = torch.randn(1, 5, 8, 8, 8)
    extra = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        a, b = narrow(x), wide(torch.cat([x, extra], 1))
    for out_a, out_b in zip(a, b, strict=True):
        torch.testing.assert_close(out_a.tsdf, out_b.tsdf)
    torch.testing.assert_close(a[0].observed, b[0].observed)


def test_model_with_color_variance_takes_one_more_channel():
    cfg = ModelConfig(
        backbone=BackboneConfig(width=8, out_channels=8),
        net=NetConfig(channels=(4, 8, 8), color_variance=True),
        voxel_sizes=(0.08, 0.16, 0.32),
    )
    net = build_model(cfg)
    assert net.net.stem[0][0].weight.shape[1] == 8 + 1 + 2 + 1
    assert ModelConfig.from_dict(cfg.to_dict()).net.color_variance


def test_fine_tuning_adds_the_channel_to_a_model_file_without_it(tmp_path, caplog):
    narrow_cfg = ModelConfig(
        backbone=BackboneConfig(width=8, out_channels=8),
        net=NetConfig(channels=(4, 8, 8)),
        voxel_sizes=(0.08, 0.16, 0.32),
    )
    narrow = build_model(narrow_cfg)
    path = save_model(narrow, narrow_cfg, tmp_path / "narrow.pt", assumed_contract(narrow_cfg, {}))
    wide_cfg = narrow_cfg.to_dict()
    wide_cfg["net"]["color_variance"] = True
    with caplog.at_level(logging.INFO, logger="atlas.training.lightning"):
        module = ATLASModule(wide_cfg, init_weights=str(path))
    assert "input widened from 11 to 12 channels" in caplog.text
    stem = module.model.net.stem[0][0].weight
    assert stem.shape[1] == 12 and stem[:, 11].abs().max() == 0
    torch.testing.assert_close(stem[:, :11], narrow.net.stem[0][0].weight)
    torch.testing.assert_close(
        module.model.backbone.conv1.weight,
        narrow.backbone.conv1.weight,
    )
