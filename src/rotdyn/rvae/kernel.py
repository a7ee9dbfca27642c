"""The decoder MLP as one autograd function over tiles of whole images (the CPU kernel).

The decoder's three layers run per tile of ``tile`` images so that the
temporaries stay in cache; the two activations saved for the backward pass
go to buffers reused from batch to batch (:class:`Workspace`), so no freshly
mapped, kernel-zeroed memory is touched every step; tanh's derivative comes
from its saved output, and a column of ones in the grid folds the first
layer's bias into its matmul and its gradient. Measurements behind these
choices: ``docs/rvae-speed.md``. On CUDA the model runs the plain
layer-by-layer decoder instead.
"""
from __future__ import annotations

import torch

class Workspace:
    """Buffers of the tiled decoder kept from call to call (not part of the state).

    ``generation`` counts forwards that saved activations: a backward whose
    buffers a later forward has overwritten raises instead of returning
    wrong gradients.
    """

    def __init__(self):
        self.buffers: dict[str, torch.Tensor] = {}
        self.generation = 0

    def get(self, name: str, rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
        """A ``(rows, cols)`` view of buffer ``name``, grown (never shrunk) as needed, of ``like``'s dtype and device."""
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
    the first layer's per-image matrix ``A`` (2 rows) and bias ``c`` (1 row),
    so one batched matmul writes the first layer, and one gives both
    gradients back.
    """

    @staticmethod
    def forward(ctx, grid1, Ac, W2, b2, w3, b3, ws, tile, save):
        B, P, H = Ac.shape[0], grid1.shape[0], Ac.shape[2]
        out = torch.empty(B, P, dtype=Ac.dtype, device=Ac.device)
        if save:
            h1_all, h2_all = ws.get("h1", B * P, H, Ac), ws.get("h2", B * P, H, Ac)
            ws.generation += 1
            ctx.generation = ws.generation
        else:
            h1_tile, h2_tile = ws.get("t1", tile * P, H, Ac), ws.get("t2", tile * P, H, Ac)
        g1x = grid1.expand(tile, P, 3)
        for i in range(0, B, tile):
            j = min(i + tile, B)
            n = j - i
            rows = slice(i * P, j * P)
            h1 = (h1_all[rows] if save else h1_tile[: n * P]).view(n, P, H)
            h2 = h2_all[rows] if save else h2_tile[: n * P]
            torch.bmm(g1x[:n], Ac[i:j], out=h1)
            h1.tanh_()
            torch.addmm(b2, h1.view(n * P, H), W2.t(), out=h2)
            h2.tanh_()
            torch.mv(h2, w3[0], out=out[i:j].view(-1))
        out.add_(b3)
        ctx.ws, ctx.tile = ws, tile
        ctx.save_for_backward(grid1, Ac, W2, w3)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        grid1, Ac, W2, w3 = ctx.saved_tensors
        ws, tile = ctx.ws, ctx.tile
        if not hasattr(ctx, "generation") or ctx.generation != ws.generation:
            raise RuntimeError("rVAE decoder: a later forward reused the saved activations; "
                               "call backward() before the next training forward (or use tiled=False)")
        B, P, H = Ac.shape[0], grid1.shape[0], Ac.shape[2]
        grad_out = grad_out.contiguous()
        h1_all, h2_all = ws.buffers["h1"], ws.buffers["h2"]
        g2_tile, g1_tile = ws.get("g2", tile * P, H, Ac), ws.get("g1", tile * P, H, Ac)
        ones = torch.ones(tile * P, dtype=Ac.dtype, device=Ac.device)
        gAc = torch.empty_like(Ac)
        gW2, gb2 = torch.zeros_like(W2), torch.zeros(H, dtype=Ac.dtype, device=Ac.device)
        gw3 = torch.zeros(H, dtype=Ac.dtype, device=Ac.device)
        g1xt = grid1.t().expand(tile, 3, P)
        for i in range(0, B, tile):
            j = min(i + tile, B)
            n = j - i
            rows = slice(i * P, j * P)
            h1, h2 = h1_all[rows], h2_all[rows]
            g = grad_out[i:j].reshape(-1)
            gw3.addmv_(h2.t(), g)
            g2 = g2_tile[: n * P]
            torch.outer(g, w3[0], out=g2)
            _tanh_backward(g2, h2, grad_input=g2)  # through tanh via its output: g (1 - h^2)
            gW2.addmm_(g2.t(), h1)
            gb2.addmv_(g2.t(), ones[: n * P])
            g1 = g1_tile[: n * P]
            torch.mm(g2, W2, out=g1)
            _tanh_backward(g1, h1, grad_input=g1)
            torch.bmm(g1xt[:n], g1.view(n, P, H), out=gAc[i:j])
        gb3 = grad_out.sum().reshape(1)
        return None, gAc, gW2, gb2, gw3[None], gb3, None, None, None


def tiled_mlp(grid1: torch.Tensor, Ac: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor, w3: torch.Tensor,
              b3: torch.Tensor, workspace: Workspace, tile: int) -> torch.Tensor:
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

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> grid1 = torch.cat([torch.rand(9, 2, generator=g), torch.ones(9, 1)], 1)
    >>> Ac, W2, b2 = torch.randn(4, 3, 5, generator=g), torch.randn(5, 5, generator=g), torch.randn(5, generator=g)
    >>> w3, b3 = torch.randn(1, 5, generator=g), torch.randn(1, generator=g)
    >>> plain = torch.tanh(torch.tanh(grid1 @ Ac) @ W2.t() + b2) @ w3[0] + b3
    >>> torch.allclose(tiled_mlp(grid1, Ac, W2, b2, w3, b3, Workspace(), tile=3), plain, atol=1e-5)
    True
    """
    save = torch.is_grad_enabled() and any(p.requires_grad for p in (Ac, W2, b2, w3, b3))
    return TiledMLP.apply(grid1, Ac, W2, b2, w3, b3, workspace, tile, save)
