"""Segmentation networks: the dilated-convolution 'dilnet' of Kalinin et al. [1]_ (paper 000) and a U-Net.

Every network maps ``(B, in_channels, H, W)`` images to ``(B, n_out, H, W)``
logits for any ``H, W``: the forward pass reflect-pads up to the multiple its
pooling needs and crops back, so frames are never resized.

Class conventions: ``n_classes`` counts the background. Two classes give one
logit (sigmoid); more give one logit per class (softmax). :func:`probabilities`
turns either into ``(B, n_classes, H, W)``.

References
----------
.. [1] S. V. Kalinin, S. Zhang, M. Valletti, H. Pyles, D. Baker, J. J. De Yoreo,
   M. Ziatdinov, "Disentangling Rotational Dynamics and Ordering Transitions in a
   System of Self-Organizing Protein Nanorods via Rotationally Invariant Latent
   Representations", ACS Nano 15, 6471-6480 (2021). doi:10.1021/acsnano.0c08914
"""
from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .store import atomic_path, plain

ARCHS = ("dilnet", "unet")
NEGATIVE_SLOPE = 0.01


def _conv_bn_act(c_in: int, c_out: int, dilation: int = 1, members: int = 1,
                 shared_input: bool = False) -> nn.Sequential:
    """3x3 convolution ('same' size) + BatchNorm + LeakyReLU(0.01) of ``members`` networks side by side.

    Member ``m`` owns the channels ``m * c .. (m + 1) * c - 1`` of every layer
    (a grouped convolution); with ``shared_input`` all members read the same
    ``c_in`` channels (the image).
    """
    groups = 1 if shared_input else members
    return nn.Sequential(
        # no bias: BatchNorm's shift makes it redundant
        nn.Conv2d(c_in * groups, c_out * members, 3, padding=dilation, dilation=dilation, groups=groups,
                  bias=False),
        nn.BatchNorm2d(c_out * members),
        nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
    )


def conv_block(c_in: int, c_out: int, n_layers: int = 2, members: int = 1,
               shared_input: bool = False) -> nn.Sequential:
    """``n_layers`` of 3x3 conv + BN + LeakyReLU, keeping the frame size.

    Parameters
    ----------
    c_in, c_out : int
        Channels in and out of each member (every layer after the first has ``c_out`` in).
    n_layers : int
        Number of layers.
    members : int
        Independent networks computed side by side by grouped convolutions
        (see :func:`group_members`).
    shared_input : bool
        All members read the same ``c_in`` input channels (the image).

    Returns
    -------
    nn.Sequential

    Examples
    --------
    >>> import torch
    >>> conv_block(1, 4)(torch.zeros(2, 1, 16, 16)).shape
    torch.Size([2, 4, 16, 16])
    >>> conv_block(1, 4, members=3, shared_input=True)(torch.zeros(2, 1, 16, 16)).shape
    torch.Size([2, 12, 16, 16])
    """
    return nn.Sequential(*[
        _conv_bn_act(c_in, c_out, members=members, shared_input=shared_input) if i == 0
        else _conv_bn_act(c_out, c_out, members=members) for i in range(n_layers)
    ])


def group_cat(a: torch.Tensor, b: torch.Tensor, members: int = 1) -> torch.Tensor:
    """Concatenate ``a`` and ``b`` along channels member by member: ``[a_0, b_0, a_1, b_1, ...]``.

    With ``members`` networks side by side (:func:`group_members`) member
    ``m`` owns a contiguous run of channels in ``a`` and in ``b``; its next
    grouped convolution needs both runs next to each other. One member is a
    plain ``torch.cat``.

    Parameters
    ----------
    a, b : Tensor
        ``(B, members * ca, H, W)`` and ``(B, members * cb, H, W)``.
    members : int
        Networks side by side.

    Returns
    -------
    Tensor
        ``(B, members * (ca + cb), H, W)``, channels-last in memory when ``members > 1``.

    Examples
    --------
    >>> import torch
    >>> a, b = torch.tensor([0.0, 1.0]).reshape(1, 2, 1, 1), torch.tensor([10.0, 11.0]).reshape(1, 2, 1, 1)
    >>> group_cat(a, b, members=2).flatten().tolist()
    [0.0, 10.0, 1.0, 11.0]
    """
    if members == 1:
        return torch.cat([a, b], dim=1)
    # (B, H, W, members, c) views, joined on the last axis: the result is already channels-last
    a5, b5 = (t.permute(0, 2, 3, 1).unflatten(3, (members, -1)) for t in (a, b))
    return torch.cat([a5, b5], dim=4).flatten(3).permute(0, 3, 1, 2)


class DilatedCascade(nn.Module):
    """Chained dilated 3x3 convolutions whose outputs are summed (atomai's DilatedBlock).

    Each layer sees the previous layer's output (chained), so the receptive
    field grows with every rate; the block returns the sum of all layers'
    outputs, so features at every scale reach the next stage.

    Parameters
    ----------
    c_in, c_out : int
        Channels in and out of each member.
    rates : tuple of int
        Dilation rate of each layer, in order.
    members : int
        Independent networks side by side (grouped convolutions).

    Examples
    --------
    >>> import torch
    >>> DilatedCascade(4, 8)(torch.zeros(1, 4, 16, 16)).shape
    torch.Size([1, 8, 16, 16])
    """

    def __init__(self, c_in: int, c_out: int, rates: tuple[int, ...] = (2, 4, 6), members: int = 1):
        super().__init__()
        self.layers = nn.ModuleList(
            _conv_bn_act(c_in if i == 0 else c_out, c_out, dilation=r, members=members)
            for i, r in enumerate(rates)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The sum of every layer's output for ``x`` ``(B, c_in, H, W)``: ``(B, c_out, H, W)``."""
        first = total = None
        for layer in self.layers:
            x = layer(x)
            if total is None:
                first = total = x
            elif total is first:
                total = total + x  # a new tensor: the layers' outputs stay untouched
            else:
                total += x  # into that new tensor, sparing an allocation per layer
        return total


class Upsample(nn.Module):
    """A 1x1 convolution and bilinear x2 up-sampling (atomai's UpsampleBlock, in the cheaper order).

    Both are linear and bilinear weights sum to one, so convolving first
    gives the same function as atomai's up-sample-then-convolve, with the
    convolution on a quarter of the pixels and half the channels up-sampled.

    Parameters
    ----------
    c_in, c_out : int
        Channels in and out of each member.
    members : int
        Independent networks side by side (a grouped convolution).

    Examples
    --------
    >>> import torch
    >>> Upsample(8, 4)(torch.zeros(1, 8, 8, 8)).shape
    torch.Size([1, 4, 16, 16])
    """

    def __init__(self, c_in: int, c_out: int, members: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in * members, c_out * members, 1, groups=members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, c_in, H, W)`` up-sampled to ``(B, c_out, 2 H, 2 W)``."""
        return F.interpolate(self.conv(x), scale_factor=2, mode="bilinear", align_corners=False)


def pad_multiple(x: torch.Tensor, m: int) -> torch.Tensor:
    """Pad ``x`` (``..., H, W``) at the bottom and right up to multiples of ``m``.

    Reflection keeps the statistics near the edge image-like; inputs too
    small to reflect fall back to replicating the edge pixels.

    Parameters
    ----------
    x : Tensor
        ``(B, C, H, W)``.
    m : int
        The multiple.

    Returns
    -------
    Tensor
        ``x`` itself when no padding is needed.

    Examples
    --------
    >>> import torch
    >>> pad_multiple(torch.arange(3.0).reshape(1, 1, 1, 3), 4)
    tensor([[[[0., 1., 2., 1.],
              [0., 1., 2., 1.],
              [0., 1., 2., 1.],
              [0., 1., 2., 1.]]]])
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def max_pool2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max-pooling of ``x`` ``(B, C, H, W)`` with even ``H, W``.

    Without autograd it is the maximum of the four strided quarters: the
    same values as ``F.max_pool2d(x, 2)``, without computing and storing the
    int64 indices only a backward pass needs (measured 2x faster).

    Parameters
    ----------
    x : Tensor
        ``(B, C, H, W)``, ``H`` and ``W`` even (the networks pad to that).

    Returns
    -------
    Tensor
        ``(B, C, H / 2, W / 2)``.

    Examples
    --------
    >>> import torch
    >>> with torch.no_grad():
    ...     max_pool2(torch.arange(16.0).reshape(1, 1, 4, 4)).flatten().tolist()
    [5.0, 7.0, 13.0, 15.0]
    """
    if torch.is_grad_enabled() and x.requires_grad:
        return F.max_pool2d(x, 2)
    return torch.maximum(torch.maximum(x[..., ::2, ::2], x[..., 1::2, ::2]),
                         torch.maximum(x[..., ::2, 1::2], x[..., 1::2, 1::2]))


class _Segmenter(nn.Module):
    """Common frame: pad to ``self.multiple``, run ``self._forward``, crop back."""

    multiple = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, members * n_out, H, W)`` for images ``x`` ``(B, in_channels, H, W)`` of any size."""
        h, w = x.shape[-2:]
        return self._forward(pad_multiple(x, self.multiple))[..., :h, :w]


class DilNet(_Segmenter):
    """Kalinin et al.'s 'dilnet': one pooling level and a dilated bottleneck.

    Encoder: two 3x3 conv + BN + LeakyReLU at full resolution (``width``
    channels); one 2x2 max-pool; bottleneck: two :class:`DilatedCascade`
    (rates 2, 4, 6; ``width`` -> ``2 width`` -> ``2 width``); 1x1 conv back
    to ``width`` channels + bilinear x2; concatenation with the encoder
    features (skip); decoder: two 3x3 conv + BN + LeakyReLU; 1x1 conv to
    ``n_out`` logits. A single pooling keeps the detail that separates
    touching particles; the dilations supply the context. The architecture
    of paper 000 [1]_.

    Parameters
    ----------
    in_channels, n_out : int
        Image channels; logits out per member (see :func:`build_network`).
    width : int
        Channels of the first layer.
    members : int
        Independent networks side by side (grouped convolutions, one
        forward pass for an ensemble; see :func:`group_members`); the
        logits of member ``m`` are channels ``m * n_out .. (m + 1) * n_out - 1``.

    References
    ----------
    .. [1] S. V. Kalinin, S. Zhang, M. Valletti, H. Pyles, D. Baker, J. J. De Yoreo,
       M. Ziatdinov, "Disentangling Rotational Dynamics and Ordering Transitions in a
       System of Self-Organizing Protein Nanorods via Rotationally Invariant Latent
       Representations", ACS Nano 15, 6471-6480 (2021). doi:10.1021/acsnano.0c08914

    Examples
    --------
    Any frame size comes back as it went in:

    >>> import torch
    >>> DilNet(width=4)(torch.zeros(1, 1, 15, 17)).shape
    torch.Size([1, 1, 15, 17])
    """

    multiple = 2

    def __init__(self, in_channels: int = 1, n_out: int = 1, width: int = 16, members: int = 1):
        super().__init__()
        self.members = members
        self.encoder = conv_block(in_channels, width, members=members, shared_input=True)
        self.cascade1 = DilatedCascade(width, 2 * width, members=members)
        self.cascade2 = DilatedCascade(2 * width, 2 * width, members=members)
        self.up = Upsample(2 * width, width, members=members)
        self.decoder = conv_block(2 * width, width, members=members)
        self.head = nn.Conv2d(width * members, n_out * members, 1, groups=members)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.encoder(x)
        x = self.cascade2(self.cascade1(max_pool2(skip)))
        x = group_cat(self.up(x), skip, self.members)
        return self.head(self.decoder(x))


class UNet(_Segmenter):
    """Standard U-Net: ``depth`` max-pools, channels doubling from ``width``, up-sampling + skip.

    Parameters
    ----------
    in_channels, n_out : int
        Image channels; logits out per member (see :func:`build_network`).
    width : int
        Channels of the first level.
    depth : int
        Pooling levels; frames are padded to multiples of ``2**depth`` inside.
    members : int
        Independent networks side by side, as for :class:`DilNet`.

    Examples
    --------
    >>> import torch
    >>> UNet(n_out=3, width=4, depth=2)(torch.zeros(1, 1, 10, 12)).shape
    torch.Size([1, 3, 10, 12])
    """

    def __init__(self, in_channels: int = 1, n_out: int = 1, width: int = 16, depth: int = 3, members: int = 1):
        super().__init__()
        self.multiple, self.members = 2**depth, members
        widths = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList(
            conv_block(in_channels, widths[0], members=members, shared_input=True) if i == 0
            else conv_block(widths[i - 1], widths[i], members=members) for i in range(depth)
        )
        self.bottleneck = conv_block(widths[depth - 1], widths[depth], members=members)
        self.ups = nn.ModuleList(Upsample(widths[i + 1], widths[i], members) for i in reversed(range(depth)))
        self.up_blocks = nn.ModuleList(
            conv_block(2 * widths[i], widths[i], members=members) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(width * members, n_out * members, 1, groups=members)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = max_pool2(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.ups, self.up_blocks, reversed(skips)):
            x = block(group_cat(up(x), skip, self.members))
        return self.head(x)


def build_network(arch: str, n_classes: int, width: int = 16, members: int = 1) -> nn.Module:
    """Network ``arch`` ('dilnet' or 'unet') for ``n_classes`` classes including background.

    The model carries ``arch``, ``n_classes``, ``width`` and ``members`` as
    attributes so that :func:`save_model` and :func:`probabilities` need
    nothing else.

    Parameters
    ----------
    arch : {"dilnet", "unet"}
        :class:`DilNet` (paper 000 [1]_) or :class:`UNet`.
    n_classes : int
        Classes including the background; 2 gives one logit, more one per class.
    width : int
        Channels of the first layer.
    members : int
        Independent networks in one (grouped convolutions), for inference of
        an ensemble in one forward pass; see :func:`group_members`.

    Returns
    -------
    nn.Module
        In channels-last memory format.

    References
    ----------
    .. [1] S. V. Kalinin, S. Zhang, M. Valletti, H. Pyles, D. Baker, J. J. De Yoreo,
       M. Ziatdinov, "Disentangling Rotational Dynamics and Ordering Transitions in a
       System of Self-Organizing Protein Nanorods via Rotationally Invariant Latent
       Representations", ACS Nano 15, 6471-6480 (2021). doi:10.1021/acsnano.0c08914

    Examples
    --------
    >>> model = build_network("dilnet", n_classes=3, width=4)
    >>> model.arch, model.n_classes, model.head.out_channels
    ('dilnet', 3, 3)
    """
    if n_classes < 2:
        raise ValueError(f"n_classes={n_classes}: need at least background and one class")
    if members < 1:
        raise ValueError(f"members={members}: need at least one")
    n_out = 1 if n_classes == 2 else n_classes
    if arch == "dilnet":
        model = DilNet(1, n_out, width, members=members)
    elif arch == "unet":
        model = UNet(1, n_out, width, members=members)
    else:
        raise ValueError(f"unknown network architecture {arch!r}; choose from {ARCHS}")
    model.arch, model.n_classes, model.width = arch, int(n_classes), int(width)
    # channels-last convolutions measured 1.4x faster on CPU; one layout
    # everywhere also keeps a reloaded model's outputs bit-identical
    return model.to(memory_format=torch.channels_last)


def group_members(models: list[nn.Module]) -> nn.Module:
    """The ensemble ``models`` as one network of grouped convolutions: one forward pass for all members.

    Every layer's weights are the members' concatenated along the output
    channels; member ``m``'s logits are output channels
    ``m * n_out .. (m + 1) * n_out - 1``. In float32 the result equals the
    members run one by one to float precision.

    Parameters
    ----------
    models : list of nn.Module
        Members from :func:`build_network` (or :func:`load_model`) with the
        same ``arch``, ``width`` and ``n_classes``.

    Returns
    -------
    nn.Module
        In eval mode, on the first member's device, with ``members`` set.

    Raises
    ------
    ValueError
        For no members, or members of different shapes.

    Examples
    --------
    >>> import torch
    >>> members = [build_network("dilnet", 2, width=4).eval() for _ in range(3)]
    >>> x = torch.randn(1, 1, 16, 16)
    >>> grouped = group_members(members)
    >>> one_by_one = torch.cat([m(x) for m in members], dim=1)
    >>> grouped.members, bool(torch.allclose(grouped(x), one_by_one, atol=1e-5))
    (3, True)
    """
    if not models:
        raise ValueError("no ensemble members to group")
    shape = lambda m: (m.arch, m.n_classes, m.width, getattr(m, "members", 1))  # noqa: E731
    first = models[0]
    for i, model in enumerate(models):
        if shape(model) != shape(first) or shape(model)[3] != 1:
            raise ValueError(f"member {i} is {shape(model)[:3]}, member 0 {shape(first)[:3]}: "
                             "members must be single networks of one arch, n_classes and width")
    grouped = build_network(first.arch, first.n_classes, first.width, members=len(models))
    states = [m.state_dict() for m in models]
    # every tensor is per output channel along dim 0; scalars (BatchNorm's counter) are shared
    grouped.load_state_dict({k: torch.cat([s[k] for s in states]) if v.ndim else v for k, v in states[0].items()})
    grouped.class_names = getattr(first, "class_names", None)
    return grouped.to(model_device(first)).eval()


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for inference with every BatchNorm folded into the convolution before it.

    Uses :func:`torch.nn.utils.fusion.fuse_conv_bn_eval`: the convolution
    takes the BatchNorm's running scale and shift into its weights and bias,
    saving a pass over every feature map. Same outputs in eval mode (to float
    precision); not for training.

    Parameters
    ----------
    model : nn.Module
        From :func:`build_network` or :func:`group_members`.

    Returns
    -------
    nn.Module
        In eval mode, BatchNorm layers replaced by ``nn.Identity``.

    Examples
    --------
    >>> import torch
    >>> model = build_network("dilnet", 2, width=4)
    >>> _ = model(torch.randn(4, 1, 16, 16))  # move BatchNorm's running statistics
    >>> fused, x = fuse_batchnorm(model), torch.randn(2, 1, 16, 16)
    >>> has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    >>> has_bn, bool(torch.allclose(fused(x), model.eval()(x), atol=1e-5))
    (False, True)
    """
    fused = copy.deepcopy(model).eval()
    for seq in fused.modules():
        if isinstance(seq, nn.Sequential) and len(seq) >= 2 and isinstance(seq[0], nn.Conv2d) \
                and isinstance(seq[1], nn.BatchNorm2d):
            seq[0] = fuse_conv_bn_eval(seq[0], seq[1])
            seq[1] = nn.Identity()
    return fused


class SplitPrecision(nn.Module):
    """Float32 images as two reduced-precision channels, high and low part, that sum back to them.

    bfloat16 keeps 8 significant bits: rounding the image itself was
    measured to cause most of the difference between bfloat16 and float32
    probabilities (max abs 0.023 vs 0.008 on simulated rods). A convolution
    over ``[hi, lo]`` with its weights repeated for both computes on the
    image to about 16 bits, in reduced precision throughout.

    Parameters
    ----------
    dtype : torch.dtype
        The reduced precision (``torch.bfloat16``).

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[[[1 / 3]]]])
    >>> hi, lo = SplitPrecision(torch.bfloat16)(x)[0, :, 0, 0]
    >>> hi.dtype, abs(float(hi) - 1 / 3) > 1e-4, abs(float(hi) + float(lo) - 1 / 3) < 1e-5
    (torch.bfloat16, True, True)
    """

    def __init__(self, dtype: torch.dtype):
        super().__init__()
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` float32 -> ``(B, 2 C, H, W)``: ``[hi, lo]`` in ``self.dtype``."""
        hi = x.to(self.dtype)
        return torch.cat([hi, (x - hi.float()).to(self.dtype)], dim=1)


def stem(model: nn.Module) -> nn.Sequential:
    """The first conv + BN + LeakyReLU block of ``model``: the one that reads the image.

    Parameters
    ----------
    model : nn.Module
        A :class:`DilNet` or :class:`UNet`.

    Returns
    -------
    nn.Sequential

    Examples
    --------
    >>> stem(build_network("unet", 2, width=4))[0].in_channels
    1
    """
    return model.encoder[0] if isinstance(model, DilNet) else model.down[0][0]


def inference_network(models: list[nn.Module], dtype: torch.dtype | None = None) -> nn.Module:
    """``models`` as one network ready for fast inference: grouped, BatchNorm fused, reduced precision.

    One network computes all members (:func:`group_members`; one member
    stays a plain network) with every BatchNorm folded into its
    convolution (:func:`fuse_batchnorm`). With a reduced ``dtype`` the
    weights and feature maps are stored in it, with no casts per layer as
    under autocast; the first convolution reads the image as two channels,
    its high and low part (:class:`SplitPrecision`), so the image keeps
    float32-like precision.

    Parameters
    ----------
    models : list of nn.Module
        The members (:func:`load_model`), on one device.
    dtype : torch.dtype or None
        ``torch.bfloat16`` or ``torch.float16``; None: float32.

    Returns
    -------
    nn.Module
        Channels-last, eval mode, no gradients; it takes float32 images
        ``(B, 1, H, W)`` and returns logits ``(B, members * n_out, H, W)`` in
        ``dtype``, recorded as its attribute ``dtype``.

    Examples
    --------
    >>> import torch
    >>> members = [build_network("dilnet", 2, width=4).eval() for _ in range(2)]
    >>> x = torch.randn(1, 1, 16, 16)
    >>> fast = inference_network(members, torch.bfloat16)
    >>> with torch.inference_mode():
    ...     logits, reference = fast(x), torch.cat([m(x) for m in members], dim=1)
    >>> logits.shape, logits.dtype, stem(fast)[1].in_channels
    (torch.Size([1, 2, 16, 16]), torch.bfloat16, 2)
    >>> float((logits.float() - reference).abs().max()) < 0.05
    True
    """
    net = fuse_batchnorm(group_members(models) if len(models) > 1 else models[0])
    net.dtype = dtype or torch.float32
    if net.dtype != torch.float32:
        net.to(dtype)
        block = stem(net)
        conv = block[0]
        conv.weight = nn.Parameter(torch.cat([conv.weight, conv.weight], dim=1))  # for hi and lo
        conv.in_channels *= 2
        block.insert(0, SplitPrecision(dtype))
    return net.to(memory_format=torch.channels_last).requires_grad_(False).eval()


def probabilities(logits: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Per-class probabilities ``(B, n_classes, H, W)`` (float32) from logits.

    Parameters
    ----------
    logits : Tensor
        ``(B, 1, H, W)`` for two classes (sigmoid), ``(B, n_classes, H, W)`` otherwise (softmax).
    n_classes : int
        Classes including the background.

    Returns
    -------
    Tensor
        Summing to 1 over the class dimension.

    Examples
    --------
    >>> import torch
    >>> probabilities(torch.zeros(1, 1, 1, 2), 2)[0, :, 0].tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    logits = logits.float()
    if n_classes == 2:
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(logits, dim=1)


def model_device(model: nn.Module) -> torch.device:
    """The device that holds ``model``'s parameters (the first one's; all share it here).

    Parameters
    ----------
    model : nn.Module
        A model with at least one parameter.

    Returns
    -------
    torch.device

    Examples
    --------
    >>> from torch import nn
    >>> model_device(nn.Linear(2, 1))
    device(type='cpu')
    """
    return next(model.parameters()).device


def cpu_has_fast_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AMX tiles or AVX512-BF16).

    Without them oneDNN emulates bfloat16 and is slower than float32
    (measured 2-3x slower on an AVX512 Xeon without AMX).

    Returns
    -------
    bool

    Examples
    --------
    >>> cpu_has_fast_bf16() in (True, False)
    True
    """
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def autocast_dtype(device: torch.device | str, bf16: bool | str = "auto") -> torch.dtype | None:
    """Reduced precision to autocast to on ``device``, or ``None`` for float32.

    ``bf16``: False -> float32; True -> bfloat16 (float16 on GPUs without
    bfloat16); "auto" -> bfloat16 on a CPU only when :func:`cpu_has_fast_bf16`,
    bfloat16 (else float16) on CUDA.

    Parameters
    ----------
    device : torch.device or str
        Where the network runs.
    bf16 : bool or "auto"
        As above (also "true"/"false", "yes"/"no", "on"/"off").

    Returns
    -------
    torch.dtype or None

    Raises
    ------
    ValueError
        For any other ``bf16``.

    Examples
    --------
    >>> autocast_dtype("cpu", False) is None, autocast_dtype("cpu", True)
    (True, torch.bfloat16)
    """
    device = torch.device(device)
    if bf16 in (False, 0) or str(bf16).lower() in ("false", "no", "off"):
        return None
    if bf16 not in (True, 1) and str(bf16).lower() not in ("auto", "true", "yes", "on"):
        raise ValueError(f"bf16={bf16!r}: use True, False or 'auto'")
    auto = str(bf16).lower() == "auto"
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and not (auto and not cpu_has_fast_bf16()):
        return torch.bfloat16
    return None


def autocast(device: torch.device | str, dtype: torch.dtype | None):
    """``torch.autocast`` context for ``dtype`` on ``device`` (a no-op for float32).

    Parameters
    ----------
    device : torch.device or str
        Where the computation runs.
    dtype : torch.dtype or None
        As :func:`autocast_dtype` returns it; None: full float32.

    Returns
    -------
    context manager

    Examples
    --------
    >>> import torch
    >>> with autocast("cpu", torch.bfloat16):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.bfloat16
    >>> with autocast("cpu", None):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.float32
    """
    device = torch.device(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@contextlib.contextmanager
def num_threads(n: int | None):
    """Use ``n`` intra-op CPU threads inside the block (``None``: leave as is), then restore.

    Parameters
    ----------
    n : int or None
        Threads.

    Returns
    -------
    contextlib.AbstractContextManager
        Yields None; the previous thread count is restored on exit.

    Examples
    --------
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with num_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def predict_proba(model: nn.Module, x: torch.Tensor, amp_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Class probabilities ``(B, n_classes, H, W)`` for images ``x`` ``(B, 1, H, W)``.

    Runs in eval mode (BatchNorm uses its running statistics) without autograd,
    on the model's device; any frame size is accepted and kept.

    Parameters
    ----------
    model : nn.Module
        From :func:`build_network` (it needs ``n_classes``).
    x : Tensor
        ``(B, 1, H, W)`` images, on any device.
    amp_dtype : torch.dtype or None
        Reduced precision (:func:`autocast_dtype`); None: float32.

    Returns
    -------
    Tensor
        float32, on the model's device, summing to 1 over classes.

    Examples
    --------
    >>> import torch
    >>> p = predict_proba(build_network("unet", 3, width=4), torch.zeros(2, 1, 16, 16))
    >>> p.shape, bool(torch.allclose(p.sum(dim=1), torch.ones(1)))
    (torch.Size([2, 3, 16, 16]), True)
    """
    device = model_device(model)
    model.eval()
    with torch.inference_mode():
        with autocast(device, amp_dtype):
            x = x.to(device=device, dtype=torch.float32).contiguous(memory_format=torch.channels_last)
            logits = model(x)
        return probabilities(logits, model.n_classes)


def pick_device(prefer: str = "auto") -> torch.device:
    """``cuda`` when available (unless ``prefer`` is 'cpu'); an explicit 'cuda' must exist.

    Parameters
    ----------
    prefer : {"auto", "cpu", "cuda", "cuda:N"}
        None or "" count as "auto".

    Returns
    -------
    torch.device

    Raises
    ------
    RuntimeError
        For "cuda" on a machine without CUDA.
    ValueError
        For any other value.

    Examples
    --------
    >>> pick_device("cpu"), pick_device("auto").type in ("cpu", "cuda")
    (device(type='cpu'), True)
    """
    prefer = str(prefer or "auto")
    if prefer == "cpu":
        return torch.device("cpu")
    if prefer == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if prefer.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {prefer!r} requested but CUDA is not available")
        return torch.device(prefer)
    raise ValueError(f"device {prefer!r}: use 'auto', 'cpu' or 'cuda[:N]'")


def save_model(model: nn.Module, path: str | os.PathLike, meta: dict | None = None) -> None:
    """Save ``{"state_dict", "meta"}`` to ``path`` atomically.

    ``meta`` is completed from the model (arch, width, n_classes and, after
    training, ``model.training_info`` and ``model.class_names``); it must end
    up with ``class_names``, one per class including background.

    Parameters
    ----------
    model : nn.Module
        From :func:`build_network`.
    path : path
        The checkpoint to write (``.pt``).
    meta : dict, optional
        More facts to store, overriding the model's.

    Raises
    ------
    ValueError
        When ``class_names`` are missing or do not match ``n_classes``.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "net.pt")
    >>> save_model(build_network("dilnet", 2, width=4), path, {"class_names": ["background", "rod"]})
    >>> load_model(path)[1]["class_names"]
    ['background', 'rod']
    """
    if getattr(model, "members", 1) != 1:
        raise ValueError("save the members one by one, not a grouped network (group_members)")
    full = {"arch": model.arch, "width": model.width, "n_classes": model.n_classes}
    if getattr(model, "class_names", None):
        full["class_names"] = list(model.class_names)
    full.update(getattr(model, "training_info", {}))
    full.update(meta or {})
    full = plain(full, nan=float("nan"))  # weights_only loading takes plain types only
    names = full.get("class_names")
    if not names or len(names) != full["n_classes"]:
        raise ValueError(f"meta needs class_names for all {full['n_classes']} classes, got {names!r}")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "meta": full}, tmp)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a network saved by :func:`save_model`; returns ``(model, meta)`` in eval mode.

    Parameters
    ----------
    path : path
        A checkpoint written by :func:`save_model`.
    device : str or torch.device
        Where the model goes.

    Returns
    -------
    model : nn.Module
        In eval mode on ``device``, with ``class_names``.
    meta : dict
        What :func:`save_model` stored (arch, width, n_classes, class_names, training facts).

    Examples
    --------
    >>> import os, tempfile
    >>> import torch
    >>> path = os.path.join(tempfile.mkdtemp(), "net.pt")
    >>> net = build_network("unet", 2, width=4)
    >>> save_model(net, path, {"class_names": ["background", "atom"], "seed": 3})
    >>> model, meta = load_model(path)
    >>> meta["seed"], model.training, bool(torch.equal(model.head.weight, net.head.weight))
    (3, False, True)
    """
    blob = torch.load(Path(path), map_location=device, weights_only=True)
    meta = blob["meta"]
    model = build_network(meta["arch"], meta["n_classes"], meta["width"])
    model.load_state_dict(blob["state_dict"])
    model.class_names = list(meta["class_names"])
    return model.to(device).eval(), meta
