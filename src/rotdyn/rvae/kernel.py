"""The decoder MLP as one autograd function over tiles of whole images (the CPU kernel).

The decoder's three layers run per tile of ``tile`` images, a tile's hidden
activation about a core's L2 cache (:func:`tile_images`); the two
activations saved for the backward pass go to buffers reused from batch to
batch (:class:`Workspace`), so no freshly mapped, kernel-zeroed memory is
touched for them every step; tanh's derivative comes from its saved output,
and a column of ones in the grid folds the first layer's bias into its
matmul and its gradient. A tile's rows are ordered (pixel, image): the
first layer of all its images is then one matmul ``grid1 @ [Ac_1 | Ac_2 |
...]``, and so is its gradient. Where oneDNN is present each hidden layer is
one oneDNN matmul that applies tanh before its output leaves the cache
(:func:`linear_tanh`; torch's own tanh is a separate, slow pass over memory).

Precision (:func:`decoder_precision`): the matmuls and the saved
activations run in float32 or bfloat16; inputs, output, gradients and the
weights stay float32, the matmuls accumulate in float32 and the weight
gradients are summed over tiles in float32. "auto" takes bfloat16 where it
measured faster (:func:`auto_dtype`). Measurements behind all these
choices: ``docs/rvae-speed.md``. On CUDA the model runs the plain
layer-by-layer decoder instead.
"""
from __future__ import annotations

import functools

import torch

from ..networks import cpu_has_fast_bf16

PRECISIONS = ("float32", "bfloat16", "auto")


# bfloat16 pays where the decoder's matmuls per image (pixels x hidden^2 multiply-adds) outweigh
# the fixed costs of a step: measured on an AVX512-BF16 CPU, docs/rvae-speed.md
MIN_BF16_WORK = 2**20
TILE_BYTES = 2**21  # one hidden activation per tile: about a core's L2 cache (measured optimum)


def auto_dtype(device: torch.device | str, pixels: int, hidden: int) -> torch.dtype:
    """The tiled decoder's compute dtype that measured faster for windows of ``pixels`` on this CPU.

    bfloat16 where the CPU computes it natively (:func:`rotdyn.networks.cpu_has_fast_bf16`:
    AVX512-BF16 or AMX) and a window's decoder work, ``pixels * hidden**2``
    multiply-adds, is at least :data:`MIN_BF16_WORK`; float32 otherwise
    (and on other devices).

    Parameters
    ----------
    device : torch.device or str
        Where the decoder runs.
    pixels, hidden : int
        Pixels per window and width of the decoder's hidden layers.

    Returns
    -------
    torch.dtype

    Examples
    --------
    >>> auto_dtype("cpu", 8 * 8, 16)  # too little work per window for bfloat16 to pay
    torch.float32
    >>> auto_dtype("cpu", 24 * 24, 128) == (torch.bfloat16 if cpu_has_fast_bf16() else torch.float32)
    True
    """
    fast = torch.device(device).type == "cpu" and cpu_has_fast_bf16()
    return torch.bfloat16 if fast and pixels * hidden**2 >= MIN_BF16_WORK else torch.float32


def tile_images(pixels: int, hidden: int, dtype: torch.dtype) -> int:
    """Images per tile: as many whole windows as keep one hidden activation within :data:`TILE_BYTES`.

    Parameters
    ----------
    pixels : int
        Pixels per window (``S * S``).
    hidden : int
        Width of the hidden layers.
    dtype : torch.dtype
        Compute dtype of the activations (its item size counts).

    Returns
    -------
    int
        Whole windows per tile, at least 1.

    Examples
    --------
    >>> tile_images(24 * 24, 128, torch.float32), tile_images(24 * 24, 128, torch.bfloat16)
    (7, 14)
    """
    itemsize = torch.empty(0, dtype=dtype).element_size()
    return max(1, TILE_BYTES // (pixels * hidden * itemsize))


def decoder_precision(precision: str, device: torch.device | str, pixels: int, hidden: int,
                      tiled: bool | None = None, autocast: torch.dtype | None = None) -> torch.dtype:
    """The decoder's compute dtype for a ``precision`` option ("auto", "float32" or "bfloat16").

    Under autocast to bfloat16 (``autocast``), bfloat16; "auto" is
    :func:`auto_dtype` for the tiled decoder (``tiled``; None: on the CPU)
    and float32 for the plain one.

    Parameters
    ----------
    precision : {"auto", "float32", "bfloat16"}
        The model's ``precision`` option; another raises ValueError.
    device : torch.device or str
        Where the decoder runs.
    pixels : int
        Pixels per window (``S * S``), for :func:`auto_dtype`.
    hidden : int
        Width of the hidden layers, for :func:`auto_dtype`.
    tiled : bool or None
        Whether the tiled decoder runs (None: on the CPU only).
    autocast : torch.dtype or None
        The autocast dtype in force on ``device``, None outside autocast.

    Returns
    -------
    torch.dtype
        ``torch.float32`` or ``torch.bfloat16``.

    Examples
    --------
    >>> decoder_precision("float32", "cpu", 576, 128), decoder_precision("bfloat16", "cpu", 576, 128)
    (torch.float32, torch.bfloat16)
    >>> decoder_precision("auto", "cpu", 576, 128, tiled=False)
    torch.float32
    >>> decoder_precision("float32", "cpu", 576, 128, autocast=torch.bfloat16)
    torch.bfloat16
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    device = torch.device(device)
    if autocast == torch.bfloat16:
        return torch.bfloat16
    if precision == "auto":
        tiled = device.type == "cpu" if tiled is None else tiled
        return auto_dtype(device, pixels, hidden) if tiled else torch.float32
    return getattr(torch, precision)


@functools.cache
def _fused(dtype: torch.dtype) -> bool:
    """Whether oneDNN's matmul with a tanh epilogue is available for ``dtype`` here."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    return dtype == torch.float32 or bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def linear_tanh(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``tanh(x @ weight.T + bias)``, a new tensor: one oneDNN call where available, else matmul then tanh.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, in)`` inputs.
    weight : torch.Tensor
        ``(out, in)`` weights, of ``x``'s dtype.
    bias : torch.Tensor or None
        ``(out,)`` bias; None for none.

    Returns
    -------
    torch.Tensor
        ``(N, out)``, of ``x``'s dtype.

    Examples
    --------
    >>> x, w, b = torch.randn(5, 3), torch.randn(4, 3), torch.randn(4)
    >>> torch.allclose(linear_tanh(x, w, b), torch.tanh(x @ w.T + b), atol=1e-6)
    True
    """
    if _fused(x.dtype) and x.device.type == "cpu":
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "tanh", [], "")
    y = torch.mm(x, weight.t()) if bias is None else torch.addmm(bias, x, weight.t())
    return y.tanh_()


class Workspace:
    """Buffers of the tiled decoder kept from call to call (not part of the state).

    ``generation`` counts forwards that saved activations: a backward whose
    buffers a later forward has overwritten raises instead of returning
    wrong gradients.

    Attributes
    ----------
    buffers : dict of str to Tensor
        The buffers by name, each as large as the largest request so far.
    generation : int
        Forwards that saved activations into the buffers.

    Examples
    --------
    >>> ws = Workspace()
    >>> a = ws.get("h1", 4, 3, torch.zeros(1))
    >>> b = ws.get("h1", 2, 3, torch.zeros(1))  # a smaller request: a view of the same memory
    >>> a.shape, b.shape, b.data_ptr() == a.data_ptr()
    (torch.Size([4, 3]), torch.Size([2, 3]), True)
    """

    def __init__(self):
        self.buffers: dict[str, torch.Tensor] = {}
        self.generation = 0

    def get(self, name: str, rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
        """A ``(rows, cols)`` view of buffer ``name``, grown (never shrunk) as needed, of ``like``'s dtype and device.

        Parameters
        ----------
        name : str
            The buffer.
        rows, cols : int
            The view's shape.
        like : Tensor
            Its dtype and device are the buffer's.

        Returns
        -------
        Tensor
            Uninitialised: the caller writes it.

        Examples
        --------
        >>> ws = Workspace()
        >>> a = ws.get("h1", 2, 3, torch.zeros(1))
        >>> b = ws.get("h1", 8, 3, torch.zeros(1))  # larger: the buffer grows
        >>> c = ws.get("h1", 8, 3, torch.zeros(1, dtype=torch.bfloat16))  # another dtype: a new buffer
        >>> b.shape, c.dtype, ws.buffers["h1"].shape
        (torch.Size([8, 3]), torch.bfloat16, torch.Size([8, 3]))
        """
        buf = self.buffers.get(name)
        if buf is None or buf.shape[0] < rows or buf.shape[1] != cols or buf.dtype != like.dtype \
                or buf.device != like.device:
            with torch.inference_mode(False):  # a normal tensor, usable in and out of inference mode
                buf = self.buffers[name] = torch.empty(rows, cols, dtype=like.dtype, device=like.device)
        return buf[:rows]


_tanh_backward = torch.ops.aten.tanh_backward


class TiledMLP(torch.autograd.Function):
    """out[b, p] = w3 . tanh(W2 tanh([grid[p], 1] Ac[b]) + b2) + b3, over tiles of whole images.

    ``grid1`` is the pixel grid with a column of ones and ``Ac[b]`` stacks
    the first layer's per-image matrix ``A`` (2 rows) and bias ``c`` (1 row).
    A tile's rows are ordered (pixel, image), so its first layer is one
    matmul of ``grid1`` with the tile's ``Ac`` side by side, and one matmul
    gives both gradients back. ``dtype``: compute dtype (see the module).
    Called through :func:`tiled_mlp`, which documents the arguments.

    Parameters
    ----------
    grid1, Ac, W2, b2, w3, b3, ws, tile, dtype
        Of :meth:`forward`: as :func:`tiled_mlp`'s ``grid1 .. b3``, ``workspace``, ``tile`` and ``dtype``.
    save : bool
        Of :meth:`forward`: keep the activations (in ``ws``) for the backward pass.

    Examples
    --------
    The gradients equal plain autograd's:

    >>> g = torch.Generator().manual_seed(1)
    >>> grid1 = torch.cat([torch.rand(9, 2, generator=g), torch.ones(9, 1)], 1)
    >>> Ac = torch.randn(4, 3, 5, generator=g, requires_grad=True)
    >>> W2, b2 = torch.randn(5, 5, generator=g), torch.randn(5, generator=g)
    >>> w3, b3 = torch.randn(1, 5, generator=g), torch.randn(1, generator=g)
    >>> tiled = torch.autograd.grad(tiled_mlp(grid1, Ac, W2, b2, w3, b3, Workspace(), tile=3).sum(), Ac)[0]
    >>> plain = torch.autograd.grad((torch.tanh(torch.tanh(grid1 @ Ac) @ W2.t() + b2) @ w3[0] + b3).sum(), Ac)[0]
    >>> torch.allclose(tiled, plain, atol=1e-5)
    True
    """

    @staticmethod
    def forward(ctx, grid1, Ac, W2, b2, w3, b3, ws, tile, save, dtype):
        B, P, H = Ac.shape[0], grid1.shape[0], Ac.shape[2]
        like = Ac.new_empty(0, dtype=dtype)
        g1c, W2c, b2c, w3c = (t.to(dtype) for t in (grid1, W2, b2, w3))
        AcT = Ac.to(dtype).transpose(1, 2)  # (B, H, 3): per image, the first layer's (out, in) weight
        out = torch.empty(B, P, dtype=Ac.dtype, device=Ac.device)
        if save:
            h1_all, h2_all = ws.get("h1", B * P, H, like), ws.get("h2", B * P, H, like)
            ws.generation += 1
            ctx.generation = ws.generation
        for i in range(0, B, tile):
            j = min(i + tile, B)
            n = j - i
            h1 = linear_tanh(g1c, AcT[i:j].reshape(n * H, 3), None).view(P * n, H)  # rows (pixel, image)
            h2 = linear_tanh(h1, W2c, b2c)
            if save:
                rows = slice(i * P, j * P)
                h1_all[rows], h2_all[rows] = h1, h2
            out[i:j] = torch.mm(h2, w3c.t()).view(P, n).t()
        out.add_(b3)
        ctx.ws, ctx.tile, ctx.dtype = ws, tile, dtype
        ctx.save_for_backward(grid1, Ac, W2, w3)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        grid1, Ac, W2, w3 = ctx.saved_tensors
        ws, tile, dtype = ctx.ws, ctx.tile, ctx.dtype
        if not hasattr(ctx, "generation") or ctx.generation != ws.generation:
            raise RuntimeError("rVAE decoder: a later forward reused the saved activations; "
                               "call backward() before the next training forward (or use tiled=False)")
        B, P, H = Ac.shape[0], grid1.shape[0], Ac.shape[2]
        like = Ac.new_empty(0, dtype=dtype)
        gc = grad_out.to(dtype)
        g1ct, W2c, w3c = grid1.t().to(dtype), W2.to(dtype), w3.to(dtype)
        h1_all, h2_all = ws.buffers["h1"], ws.buffers["h2"]
        g2_tile, g1_tile = ws.get("g2", tile * P, H, like), ws.get("g1", tile * P, H, like)
        gAc = torch.empty_like(Ac)
        # each tile's weight gradient (float32 accumulation inside the matmul) summed over tiles in float32
        gW2, gb2, gw3 = torch.zeros_like(W2), torch.zeros_like(W2[0]), torch.zeros_like(w3)
        for i in range(0, B, tile):
            j = min(i + tile, B)
            n = j - i
            rows = slice(i * P, j * P)
            h1, h2 = h1_all[rows], h2_all[rows]
            g = gc[i:j].t().reshape(P * n, 1)  # rows (pixel, image), as the activations
            gw3 += torch.mm(g.t(), h2)
            g2 = torch.mm(g, w3c, out=g2_tile[: n * P])
            _tanh_backward(g2, h2, grad_input=g2)  # through tanh via its output: g (1 - h^2)
            gW2 += torch.mm(g2.t(), h1)
            gb2 += g2.sum(0)
            g1 = torch.mm(g2, W2c, out=g1_tile[: n * P])
            _tanh_backward(g1, h1, grad_input=g1)
            gAc[i:j] = torch.mm(g1ct, g1.view(P, n * H)).view(3, n, H).transpose(0, 1)
        gb3 = grad_out.sum().reshape(1)
        return None, gAc, gW2, gb2, gw3, gb3, None, None, None, None


def tiled_mlp(grid1: torch.Tensor, Ac: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor, w3: torch.Tensor,
              b3: torch.Tensor, workspace: Workspace, tile: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Decoder output ``(B, P)`` of the three-layer MLP, tiled, with gradients where needed.

    Parameters
    ----------
    grid1 : torch.Tensor
        ``(P, 3)`` pixel grid with a column of ones.
    Ac : torch.Tensor
        ``(B, 3, H)``: per image, the first layer's rotated coordinate weights (2 rows) and bias (1 row).
    W2, b2, w3, b3 : torch.Tensor
        Second layer ``(H, H)``, ``(H,)`` and output layer ``(1, H)``, ``(1,)`` weights.
    workspace : Workspace
        Buffers reused between calls (one per model).
    tile : int
        Images per tile.
    dtype : torch.dtype
        Compute dtype of the matmuls and saved activations: ``torch.float32``
        or ``torch.bfloat16`` (inputs, output and gradients stay float32).

    Returns
    -------
    torch.Tensor
        ``(B, P)`` float32 decoder output, differentiable in ``Ac`` and the weights.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> grid1 = torch.cat([torch.rand(9, 2, generator=g), torch.ones(9, 1)], 1)
    >>> Ac, W2, b2 = torch.randn(4, 3, 5, generator=g), torch.randn(5, 5, generator=g), torch.randn(5, generator=g)
    >>> w3, b3 = torch.randn(1, 5, generator=g), torch.randn(1, generator=g)
    >>> plain = torch.tanh(torch.tanh(grid1 @ Ac) @ W2.t() + b2) @ w3[0] + b3
    >>> torch.allclose(tiled_mlp(grid1, Ac, W2, b2, w3, b3, Workspace(), tile=3), plain, atol=1e-5)
    True
    >>> half = tiled_mlp(grid1, Ac, W2, b2, w3, b3, Workspace(), tile=3, dtype=torch.bfloat16)
    >>> half.dtype, bool((half - plain).abs().max() < 0.05 * plain.abs().max())
    (torch.float32, True)
    """
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"tiled decoder dtype must be torch.float32 or torch.bfloat16, got {dtype}")
    save = torch.is_grad_enabled() and any(p.requires_grad for p in (Ac, W2, b2, w3, b3))
    return TiledMLP.apply(grid1, Ac, W2, b2, w3, b3, workspace, tile, save, dtype)
