"""`stylegan2_lite`: a conditional StyleGAN2 (Karras et al. 2020) sized for 28–32 px images on a CPU.

Written by hand: torchvision and Lightning ship no StyleGAN, and NVlabs' stylegan2-ada needs custom CUDA
ops. Generator: a short mapping MLP from [z, embed(condition)] to w, a learned 4×4 constant, per
resolution two modulated + demodulated 3×3 convolutions with per-pixel noise, and skip "to-image" outputs
summed across resolutions up to 32 px (cropped to the data's size). Discriminator: residual blocks down to
4×4, minibatch standard deviation, and projection conditioning on the same [one-hot class, MSP] condition.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from xai_cli.errors import UserError
from xai_cli.models.generators import check_generated_size


def _unit_gain(module: nn.Module) -> None:
    """He-normal weights and zero biases for every linear and convolutional layer in `module`.

    StyleGAN2 keeps activations at unit variance through every layer (its equalised learning rate); torch's
    default initialisation shrinks them by about √3 per layer, so w, and with it the styles, would start
    nearly constant: the generator then learns to ignore z and draws one image per condition."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _fit_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-crop or zero-pad the last two dimensions to `size` (28 px data ↔ the 32 px networks)."""
    diff = size - x.shape[-1]
    if diff == 0:
        return x
    if diff > 0:
        return F.pad(x, (diff // 2, diff - diff // 2, diff // 2, diff - diff // 2))
    start = -diff // 2
    return x[..., start : start + size, start : start + size]


class MappingNetwork(nn.Module):
    """[normalised z, normalised embed(condition)] → w."""

    def __init__(self, latent_dim: int, condition_dim: int, w_dim: int, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(condition_dim, latent_dim)
        blocks: list[nn.Module] = []
        for i in range(layers):
            blocks += [nn.Linear(2 * latent_dim if i == 0 else w_dim, w_dim), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*blocks)
        _unit_gain(self)

    @staticmethod
    def _normalise(v: torch.Tensor) -> torch.Tensor:
        return v * torch.rsqrt(v.pow(2).mean(1, keepdim=True) + 1e-8)

    def forward(self, z: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([self._normalise(z), self._normalise(self.embed(condition))], 1))


class ModulatedConv2d(nn.Module):
    """A convolution whose input channels are scaled per sample by a style from w, then (optionally)
    demodulated: each output channel's weights rescaled to unit norm, so unit-variance inputs give
    unit-variance outputs without the per-activation normalisation of StyleGAN1."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int,
                 demodulate: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.affine = nn.Linear(w_dim, in_channels)
        nn.init.normal_(self.affine.weight, std=1 / math.sqrt(w_dim))  # styles vary ~±1 with w from the start
        nn.init.ones_(self.affine.bias)  # styles centred on 1: the plain convolution
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)  # equalised learning rate
        self.demodulate, self.padding = demodulate, kernel_size // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        style = self.affine(w)                                          # (N, in)
        weight = self.scale * self.weight                               # (out, in, k, k)
        # StyleGAN2's non-fused form: scale the input instead of the weights, one shared convolution for
        # the batch, then the demodulation per sample and output channel — the same result as per-sample
        # weights, and several times faster on a CPU than a grouped convolution
        out = F.conv2d(x * style[:, :, None, None], weight, padding=self.padding)
        if self.demodulate:
            # ‖w_o · s‖ over (in, k, k) = sqrt(Σ_i s_i² Σ_k w_oik²)
            demod = torch.rsqrt(style.pow(2) @ weight.pow(2).sum((2, 3)).t() + 1e-8)  # (N, out)
            out = out * demod[:, :, None, None]
        return out


class StyledLayer(nn.Module):
    """Modulated 3×3 convolution, per-pixel noise with a learned strength, bias, leaky ReLU.

    The noise is fresh per sample while training and a fixed map in eval mode (StyleGAN2's `noise_mode=
    'const'`): a trained generator is then a function of (z, condition) alone, so samples, inversions and
    metrics repeat exactly."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = self.conv(x, w)
        noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device) if self.training else self.noise_const
        x = x + self.noise_strength * noise
        return self.act(x + self.bias[None, :, None, None]) * math.sqrt(2)  # gain keeps the variance


class StyleGAN2Generator(nn.Module):
    """4×4 constant → blocks (upsample, two styled layers) per resolution up to 32 px, to-image skips."""

    def __init__(self, latent_dim: int, num_classes: int, output_shape: Sequence[int], w_dim: int = 128,
                 channels: Sequence[int] = (128, 128, 64, 32), mapping_layers: int = 2,
                 mixing_prob: float = 0.0) -> None:
        super().__init__()
        self.mixing_prob = float(mixing_prob)
        self.out_channels, self.size = int(output_shape[0]), int(output_shape[-1])
        self.mapping = MappingNetwork(latent_dim, num_classes + 1, w_dim, mapping_layers)
        self.const = nn.Parameter(torch.randn(1, channels[0], 4, 4))
        self.layers = nn.ModuleList()
        self.to_image = nn.ModuleList()
        for i, ch in enumerate(channels):  # resolutions 4, 8, 16, 32 for four entries
            resolution = 4 * 2 ** i
            first = StyledLayer(channels[i - 1] if i else channels[0], ch, w_dim, resolution)
            self.layers.append(nn.ModuleList([first, StyledLayer(ch, ch, w_dim, resolution)]))
            self.to_image.append(ModulatedConv2d(ch, self.out_channels, 1, w_dim, demodulate=False))
        self.native = 4 * 2 ** (len(channels) - 1)
        check_generated_size("stylegan2_lite", output_shape)
        if max(output_shape[-2:]) > self.native:  # larger images would be zero-padded: silent nonsense
            raise UserError(f"stylegan2_lite with {len(channels)} resolution blocks generates up to {self.native} px; "
                            f"the data is {max(output_shape[-2:])} px: use generator=mlp_gan_images, or give the "
                            "generator's and the discriminator's channels one entry per doubling")

    @property
    def num_ws(self) -> int:
        """One w per resolution block (its two styled layers and its to-image share it)."""
        return len(self.layers)

    def per_block(self, w: torch.Tensor) -> torch.Tensor:
        """The same w (N, w_dim) for every block: the styles (N, num_ws, w_dim) synthesis takes."""
        return w[:, None].expand(-1, self.num_ws, -1)

    def forward(self, z: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        ws = self.per_block(self.mapping(z, condition))
        if self.training and self.mixing_prob > 0 and self.num_ws > 1:
            # style mixing regularisation: for a share of the batch, the blocks from a random one on take the
            # w of another latent (same condition), so that neighbouring resolutions do not learn to rely on
            # each other's styles. Per block here, per layer in StyleGAN2.
            other = self.mapping(torch.randn_like(z), condition)
            cross = torch.randint(1, self.num_ws, (len(z), 1), device=z.device)
            mixed = (torch.rand(len(z), 1, device=z.device) < self.mixing_prob) \
                & (torch.arange(self.num_ws, device=z.device)[None] >= cross)
            ws = torch.where(mixed[..., None], other[:, None], ws)
        return self.synthesis(ws)

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        """Images from per-block styles ws (N, num_ws, w_dim)."""
        x = self.const.expand(len(ws), -1, -1, -1)
        image = None
        for i, ((first, second), to_image) in enumerate(zip(self.layers, self.to_image)):
            w = ws[:, i]
            if i:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = second(first(x, w), w)
            skip = to_image(x, w)
            image = skip if image is None else F.interpolate(image, scale_factor=2, mode="bilinear",
                                                             align_corners=False) + skip
        # data lives on [0, 1]: centre the network's output there (no squashing, as in StyleGAN2)
        return _fit_to(image + 0.5, self.size)  # type: ignore[operator]


class ResidualBlock(nn.Module):
    """conv 3×3, conv 3×3, 2× average-pool down; a 1×1 skip; their sum scaled by 1/√2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.act1 = nn.LeakyReLU(0.2)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.act2 = nn.LeakyReLU(0.2)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.down = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.down(self.act2(self.conv2(self.act1(self.conv1(x)))))
        return (main + self.down(self.skip(x))) / math.sqrt(2)


class MinibatchStd(nn.Module):
    """Appends the mean standard deviation over groups of samples as one more feature map: the
    discriminator sees the batch's variety, which counters collapse onto a few modes."""

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        std = x.reshape(g, -1, c, h, w).var(0, unbiased=False).add(1e-8).sqrt().mean((1, 2, 3))  # (N/g,)
        return torch.cat([x, std.repeat(g)[:, None, None, None].expand(n, 1, h, w)], 1)


class StyleGAN2Discriminator(nn.Module):
    """from-image 1×1 → residual blocks to 4×4 → minibatch std → conv → dense features h;
    score = linear(h) + ⟨embed(condition), h⟩ (projection)."""

    def __init__(self, num_classes: int, input_shape: Sequence[int],
                 channels: Sequence[int] = (32, 64, 128, 128), features: int = 128) -> None:
        super().__init__()
        self.native = 4 * 2 ** (len(channels) - 1)
        self.from_image = nn.Conv2d(int(input_shape[0]), channels[0], 1)
        self.act_in = nn.LeakyReLU(0.2)
        self.blocks = nn.Sequential(*[ResidualBlock(channels[i], channels[i + 1]) for i in range(len(channels) - 1)])
        self.stddev = MinibatchStd()
        self.conv = nn.Conv2d(channels[-1] + 1, channels[-1], 3, padding=1)
        self.act_conv = nn.LeakyReLU(0.2)
        self.dense = nn.Linear(channels[-1] * 16, features)
        self.act_dense = nn.LeakyReLU(0.2)
        self.out = nn.Linear(features, 1)
        self.embed = nn.Linear(num_classes + 1, features, bias=False)
        _unit_gain(self)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.act_in(self.from_image(_fit_to(x - 0.5, self.native))))
        h = self.act_conv(self.conv(self.stddev(h)))
        h = self.act_dense(self.dense(h.flatten(1)))
        return self.out(h)[:, 0] + (self.embed(condition) * h).sum(1)
