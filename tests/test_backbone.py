"""The ResNet-FPN backbone loads torchvision-format state dicts."""

import pytest
import torch

from atlas.model.backbone import ResNetFPN

# torchvision's ResNet layouts: blocks per stage, bottleneck or not.
LAYOUTS = {18: ((2, 2, 2, 2), False), 50: ((3, 4, 6, 3), True)}


def bn(prefix: str, n: int) -> dict:
    return {
        f"{prefix}.weight": (n,),
        f"{prefix}.bias": (n,),
        f"{prefix}.running_mean": (n,),
        f"{prefix}.running_var": (n,),
        f"{prefix}.num_batches_tracked": (),
    }


def torchvision_shapes(depth: int) -> dict[str, tuple]:
    """Key -> shape of torchvision.models.resnet<depth>().state_dict(), written out from
    torchvision's architecture (64-wide stem, stages of 64/128/256/512 planes)."""
    blocks, bottleneck = LAYOUTS[depth]
    expansion = 4 if bottleneck else 1
    shapes = {"conv1.weight": (64, 3, 7, 7), **bn("bn1", 64)}
    inplanes = 64
    for stage, n in enumerate(blocks):
        planes = 64 * 2**stage
        for b in range(n):
            p = f"layer{stage + 1}.{b}"
            if bottleneck:
                shapes[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
                shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
                shapes.update(
                    bn(f"{p}.bn1", planes) | bn(f"{p}.bn2", planes) | bn(f"{p}.bn3", planes * 4)
                )
            else:
                shapes[f"{p}.conv1.weight"] = (planes, inplanes, 3, 3)
                shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                shapes.update(bn(f"{p}.bn1", planes) | bn(f"{p}.bn2", planes))
            stride = 2 if (b == 0 and stage > 0) else 1
            if stride != 1 or inplanes != planes * expansion:
                shapes[f"{p}.downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
                shapes.update(bn(f"{p}.downsample.1", planes * expansion))
            inplanes = planes * expansion
    shapes["fc.weight"] = (1000, 512 * expansion)
    shapes["fc.bias"] = (1000,)
    return shapes


def random_state(depth: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(depth)
    return {
        k: (torch.tensor(7) if k.endswith("num_batches_tracked") else torch.randn(s, generator=g))
        for k, s in torchvision_shapes(depth).items()
    }


@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_state_dict_loads_with_no_missing_or_unexpected_keys(depth, tmp_path):
    state = random_state(depth)
    path = tmp_path / f"resnet{depth}.pth"
    torch.save(state, path)
    net = ResNetFPN(depth, 64, 32)
    assert net.encoder_keys() == set(state) - {"fc.weight", "fc.bias"}
    net.load_torchvision(path)
    own = net.state_dict()
    for k in net.encoder_keys():
        torch.testing.assert_close(own[k], state[k])


def test_wrong_resnet_is_an_error_naming_keys():
    with pytest.raises(ValueError, match="resnet50.*missing"):
        ResNetFPN(50, 64, 32).load_torchvision(random_state(18))
    with pytest.raises(ValueError, match="conv1.weight has shape"):
        ResNetFPN(18, 32, 32).load_torchvision(random_state(18))


@pytest.mark.parametrize("depth,width", [(18, 16), (50, 8)])
def test_features_at_stride_four(depth, width):
    net = ResNetFPN(depth, width, 24).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 120, 160))
    assert out.shape == (2, 24, 30, 40)
