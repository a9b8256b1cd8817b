"""Diff-Foley CAVP (Stage 1, ``CAVP_Inference``) as used by the JavisBench ``cavp_score``, for inference.

Module names are chosen so that ``state_dict()`` has exactly the keys and shapes of the released
``cavp_epoch66.ckpt`` (after its ``module.`` prefix is stripped), in the same order, and the file
loads with ``strict=True``:

* ``logit_scale``: the contrastive temperature (unused at inference, kept so the file loads).
* ``video_encoder``: mmaction2's SlowOnly ResNet3D-50 (``ResNet3dSlowOnly(depth=50)``): a
  ``1x7x7`` stride ``(1,2,2)`` stem + ``1x3x3`` max-pool, then four bottleneck stages
  (3, 4, 6, 3 blocks; 64..512 planes x 4), spatial strides 1, 2, 2, 2 in the ``1x3x3`` conv and
  no temporal stride anywhere.  Stages 3 and 4 are "inflated": their first conv is ``3x1x1``
  (temporal padding 1), so a frame's feature sees 9 frames on either side.  Every conv has no
  bias and is followed by BatchNorm (eps 1e-5).  The output is averaged over space:
  ``(B, 3, T, H, W) -> (B, 2048, T)``.
* ``video_project_head``: ``Linear(2048, 512)`` per frame.
* ``spec_encoder``: PANNs Cnn14 over a ``(B, 1, T_spec, 128)`` log-mel: BatchNorm over the 128
  mel bins, six conv blocks (two 3x3 conv+BN+ReLU, then average pooling 2x2, 2x2, 2x2, 2x2,
  1x2, 1x1), mean over the mel axis, ``max_pool1d(3,1,1) + avg_pool1d(3,1,1)`` over time, then
  ``relu(fc1(.))`` **applied twice** (a quirk of the Diff-Foley code, reproduced) and
  ``final_project`` to 512: ``(B, 1, T_spec, 128) -> (B, T_spec/16, 512)``.  The spectrogram
  head is the identity.

Dropout layers of the original are omitted (inference only; they hold no parameters), and so
are its unused max-pooling heads (``pool=False`` in the metric).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EMBED_DIM = 512
VIDEO_FEAT_DIM = 2048
N_MELS = 128
#: frames of temporal context on each side of a SlowOnly-50 output frame (6 + 3 inflated blocks)
TEMPORAL_RADIUS = 9
SPEC_DOWNSAMPLE = 16            # Cnn14 halves time four times
STAGE_BLOCKS = (3, 4, 6, 3)
STAGE_INFLATE = (False, False, True, True)
STAGE_STRIDE = (1, 2, 2, 2)
EXPANSION = 4


# ---------------------------------------------------------------------------------------------
# SlowOnly ResNet3D-50 (mmaction2 naming: ConvModule = .conv + .bn)
# ---------------------------------------------------------------------------------------------
class ConvBN3d(nn.Module):
    """Conv3d (no bias) -> BatchNorm3d -> optional ReLU; keys ``conv.weight``, ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int], stride: tuple[int, int, int] = (1, 1, 1),
                 padding: tuple[int, int, int] = (0, 0, 0), relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm3d(cout)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.relu(x, inplace=True) if self.relu else x


class Bottleneck3d(nn.Module):
    """``relu(conv3(conv2(conv1(x))) + shortcut(x))``; conv1 is ``3x1x1`` when inflated, else ``1x1x1``."""

    def __init__(self, inplanes: int, planes: int, stride: int, inflate: bool, downsample: bool) -> None:
        super().__init__()
        if inflate:
            self.conv1 = ConvBN3d(inplanes, planes, (3, 1, 1), padding=(1, 0, 0))
        else:
            self.conv1 = ConvBN3d(inplanes, planes, (1, 1, 1))
        self.conv2 = ConvBN3d(planes, planes, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1))
        self.conv3 = ConvBN3d(planes, planes * EXPANSION, (1, 1, 1), relu=False)
        self.downsample = (ConvBN3d(inplanes, planes * EXPANSION, (1, 1, 1), stride=(1, stride, stride), relu=False)
                           if downsample else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv3(self.conv2(self.conv1(x)))
        return F.relu(out + identity, inplace=True)


class SlowOnly50(nn.Module):
    """SlowOnly ResNet3D-50 trunk with spatial mean pooling: (B, 3, T, H, W) -> (B, 2048, T)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvBN3d(3, 64, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3))
        inplanes = 64
        for i, (blocks, inflate, stride) in enumerate(zip(STAGE_BLOCKS, STAGE_INFLATE, STAGE_STRIDE)):
            planes = 64 * 2 ** i
            layer = [Bottleneck3d(inplanes, planes, stride, inflate,
                                  downsample=stride != 1 or inplanes != planes * EXPANSION)]
            inplanes = planes * EXPANSION
            layer += [Bottleneck3d(inplanes, planes, 1, inflate, downsample=False) for _ in range(1, blocks)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)                                                          # (B, 64, T, H/2, W/2)
        x = F.max_pool3d(x, kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))                  # (B, 2048, T, H/32, W/32)
        return x.mean(dim=(3, 4))                                                  # (B, 2048, T)


# ---------------------------------------------------------------------------------------------
# Cnn14 (PANNs naming)
# ---------------------------------------------------------------------------------------------
class ConvBlock(nn.Module):
    """Two 3x3 conv (no bias) + BN + ReLU, then average pooling; keys ``conv1/conv2/bn1/bn2``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = F.relu(self.bn2(self.conv2(x)), inplace=True)
        return x if pool == (1, 1) else F.avg_pool2d(x, kernel_size=pool)


class Cnn14(nn.Module):
    """Cnn14 spectrogram encoder: (B, 1, T_spec, 128) -> (B, T_spec // 16, 512)."""

    POOLS = ((2, 2), (2, 2), (2, 2), (2, 2), (1, 2), (1, 1))

    def __init__(self, embed_dim: int = EMBED_DIM) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(N_MELS)
        chans = (1, 64, 128, 256, 512, 1024, 2048)
        for k in range(6):
            self.add_module(f"conv_block{k + 1}", ConvBlock(chans[k], chans[k + 1]))
        self.fc1 = nn.Linear(2048, 2048)
        self.final_project = nn.Linear(2048, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(x.transpose(1, 3)).transpose(1, 3)                            # BN over the mel bins
        for k, pool in enumerate(self.POOLS):
            x = getattr(self, f"conv_block{k + 1}")(x, pool)
        x = x.mean(dim=3)                                                          # (B, 2048, T_spec/16)
        x = F.max_pool1d(x, 3, stride=1, padding=1) + F.avg_pool1d(x, 3, stride=1, padding=1)
        x = F.relu(self.fc1(x.transpose(1, 2)))
        x = F.relu(self.fc1(x))                                                    # quirk: fc1 applied twice
        return self.final_project(x)                                               # (B, T_spec/16, 512)


# ---------------------------------------------------------------------------------------------
# the whole CAVP
# ---------------------------------------------------------------------------------------------
class CAVPNet(nn.Module):
    """CAVP video and spectrogram towers with the official state-dict layout."""

    def __init__(self) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.zeros(()))
        self.video_encoder = SlowOnly50()
        self.video_project_head = nn.Linear(VIDEO_FEAT_DIM, EMBED_DIM)
        self.spec_encoder = Cnn14(EMBED_DIM)

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """Per-frame L2-normalised embeddings: (B, 3, T, H, W) float in [0, 1] -> (B, T, 512).

        ``f_t = normalize(W x_t + b)`` with ``x_t`` the spatial mean of SlowOnly's last stage at
        frame t (frames see up to ``TEMPORAL_RADIUS`` neighbours, zero-padded at the clip ends).
        """
        feats = self.video_encoder(video).transpose(1, 2)                         # (B, T, 2048)
        return F.normalize(self.video_project_head(feats), dim=-1)

    def encode_spec(self, spec: torch.Tensor) -> torch.Tensor:
        """L2-normalised spectrogram embeddings: (B, 1, T_spec, 128) -> (B, T_spec // 16, 512)."""
        return F.normalize(self.spec_encoder(spec), dim=-1)
