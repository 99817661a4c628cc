"""attn.torch against PyTorch in float64 on fresh random inputs: the
scaled_dot_product_attention function (outputs and the gradients autograd takes
through it), the MultiheadAttention drop-in against torch.nn.MultiheadAttention
(outputs, weights, and gradients into its parameters), a nanoGPT-style model
trained 50 steps with either attention giving the same losses, and bad input."""
import copy

import numpy as np
import pytest
import torch

import attn.torch
from conftest import assert_close
import reference


def leaves(*shapes):
    """float64 leaves, and float32 leaves with the same values."""
    wide = [torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in shapes]
    narrow = [w.detach().float().requires_grad_() for w in wide]
    return wide, narrow


@pytest.mark.parametrize("case", ["plain", "causal", "bool", "float", "scale", "3d"])
def test_sdpa(seed, case):
    B, H, L, S, D = 2, 3, 13, 17, 8
    lead = (B * H,) if case == "3d" else (B, H)
    if case == "causal":
        S = L
    (q, k, v), (q32, k32, v32) = leaves((*lead, L, D), (*lead, S, D), (*lead, S, D))
    kwargs = {}
    if case == "causal":
        kwargs["is_causal"] = True
    if case == "bool":
        mask = torch.rand(B, 1, L, S) < 0.7
        mask[..., 0] = True
        kwargs["attn_mask"] = mask
    if case == "float":
        kwargs["attn_mask"] = torch.randn(L, S)
    if case == "scale":
        kwargs["scale"] = 0.2
    want = reference.sdpa(q, k, v, **kwargs)
    got = attn.torch.scaled_dot_product_attention(q32, k32, v32, **kwargs)
    assert_close(got.detach().numpy(), want, "out")
    grad = torch.randn_like(want)
    want.backward(grad)
    got.backward(grad.float())
    for name, a, b in zip("qkv", (q32, k32, v32), (q, k, v)):
        assert_close(a.grad.numpy(), b.grad, "d" + name)


def test_sdpa_non_contiguous_inputs(seed):
    (q, k, v), (q32, k32, v32) = leaves((2, 9, 3, 8), (2, 11, 3, 8), (2, 11, 3, 8))
    t = lambda x: x.transpose(1, 2)  # noqa: E731
    want = reference.sdpa(t(q), t(k), t(v))
    got = attn.torch.scaled_dot_product_attention(t(q32), t(k32), t(v32))
    assert_close(got.detach().numpy(), want, "out")
    want.sum().backward()
    got.sum().backward()
    assert_close(k32.grad.numpy(), k.grad, "dk")


def mha_pair(E, H, batch_first, bias=True):
    ours = attn.torch.MultiheadAttention(E, H, batch_first=batch_first, bias=bias)
    torch_mha = torch.nn.MultiheadAttention(E, H, batch_first=batch_first, bias=bias).double()
    assert list(ours.state_dict()) == list(torch_mha.state_dict())
    with torch.no_grad():
        for p in ours.parameters():  # biases are 0 at first: make every term count
            p.normal_(0, 0.3)
    torch_mha.load_state_dict({k: v.double() for k, v in ours.state_dict().items()})
    return ours, torch_mha


@pytest.mark.parametrize("case", ["plain", "seq_first", "padding", "float_padding",
                                  "causal_bool", "float_mask_3d", "weights", "per_head",
                                  "unbatched", "no_bias"])
def test_multihead_attention(seed, case):
    B, L, S, E, H = 3, 7, 9, 16, 4
    batch_first = case != "seq_first"
    ours, theirs = mha_pair(E, H, batch_first, bias=case != "no_bias")
    if case == "unbatched":
        shapes = (L, E), (S, E), (S, E)
    elif batch_first:
        shapes = (B, L, E), (B, S, E), (B, S, E)
    else:
        shapes = (L, B, E), (S, B, E), (S, B, E)
    (q, k, v), (q32, k32, v32) = leaves(*shapes)
    kwargs = {"need_weights": case in ("weights", "per_head")}
    if case == "per_head":
        kwargs["average_attn_weights"] = False
    if case == "padding":
        padding = torch.zeros(B, S, dtype=torch.bool)
        padding[0, 5:] = True
        kwargs["key_padding_mask"] = padding
    if case == "float_padding":
        kwargs["key_padding_mask"] = torch.randn(B, S)
    if case == "causal_bool":
        kwargs["attn_mask"] = torch.ones(L, S, dtype=torch.bool).triu(1)
    if case == "float_mask_3d":
        kwargs["attn_mask"] = torch.randn(B * H, L, S)
    wide = {k: (m.double() if m.is_floating_point() else m) for k, m in kwargs.items()
            if isinstance(m, torch.Tensor)}
    want, want_w = theirs(q, k, v, **{**kwargs, **wide})
    got, got_w = ours(q32, k32, v32, **kwargs)
    assert_close(got.detach().numpy(), want, "out")
    if kwargs["need_weights"]:
        assert_close(got_w.numpy(), want_w, "weights")
    else:
        assert got_w is None
    grad = torch.randn_like(want)
    want.backward(grad)
    got.backward(grad.float())
    for name, a, b in zip("qkv", (q32, k32, v32), (q, k, v)):
        assert_close(a.grad.numpy(), b.grad, "d" + name)
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        assert_close(a.grad.numpy(), b.grad, name + ".grad")


class Block(torch.nn.Module):
    """A nanoGPT block whose attention between the projections is `attend`."""

    def __init__(self, E, H, attend):
        super().__init__()
        self.H, self.attend = H, attend
        self.ln_1, self.ln_2 = torch.nn.LayerNorm(E), torch.nn.LayerNorm(E)
        self.c_attn, self.c_proj = torch.nn.Linear(E, 3 * E), torch.nn.Linear(E, E)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(E, 4 * E), torch.nn.GELU(),
                                       torch.nn.Linear(4 * E, E))

    def forward(self, x):
        B, T, E = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(E, dim=2)
        q, k, v = (t.view(B, T, self.H, E // self.H).transpose(1, 2) for t in (q, k, v))
        y = self.attend(q, k, v).transpose(1, 2).reshape(B, T, E)
        x = x + self.c_proj(y)
        return x + self.mlp(self.ln_2(x))


class GPT(torch.nn.Module):
    def __init__(self, V, T, E, H, layers, attend):
        super().__init__()
        self.wte, self.wpe = torch.nn.Embedding(V, E), torch.nn.Embedding(T, E)
        self.blocks = torch.nn.ModuleList(Block(E, H, attend) for _ in range(layers))
        self.ln_f, self.head = torch.nn.LayerNorm(E), torch.nn.Linear(E, V, bias=False)

    def forward(self, ids, targets):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())


def torch_attention(q, k, v):
    """PyTorch 1.13's attention: matmul, masked softmax, matmul."""
    T = q.shape[-2]
    s = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def attn_attention(q, k, v):
    return attn.torch.scaled_dot_product_attention(q, k, v, is_causal=True)


def test_training_matches_pytorch(seed):
    """The same model, seed and batches, trained 50 steps with PyTorch's attention
    and with attn's: the same loss curve within 1e-4."""
    V, T, E, H, layers, B, steps = 48, 32, 64, 4, 2, 8, 50
    # Arithmetic sequences mod V from a random start and stride: learnable, and only
    # by attending back to the tokens before.
    start = torch.randint(0, V, (steps, B, 1))
    stride = torch.randint(1, 6, (steps, B, 1))
    data = (start + stride * torch.arange(T + 1)) % V
    curves = []
    for attend in (torch_attention, attn_attention):
        torch.manual_seed(seed)
        model = GPT(V, T, E, H, layers, attend)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        curve = []
        for batch in data:
            loss = model(batch[:, :-1], batch[:, 1:])
            opt.zero_grad()
            loss.backward()
            opt.step()
            curve.append(loss.item())
        curves.append(np.array(curve))
    gap = np.abs(curves[0] - curves[1]).max()
    assert curves[1][-1] < curves[1][0] - 0.3, "the model did not learn"
    assert gap <= 1e-4, f"loss curves differ by {gap:.3g}"


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_bf16(seed, causal):
    """bfloat16 tensors run attn's bf16 kernels and come back bfloat16, gradients
    too: each element within its derived bound (reference.bf16_sdpa_bounds) of
    float64 attention on the same bfloat16 values, plus u = 2^-8 of the value for
    the result's own rounding to bfloat16."""
    shape = (2, 3, 40, 16)
    q, k, v, dout = (torch.randn(*shape).bfloat16() for _ in range(4))
    leaves_ = [t.clone().requires_grad_() for t in (q, k, v)]
    got = attn.torch.scaled_dot_product_attention(*leaves_, is_causal=causal)
    got.backward(dout)
    want, bound = reference.bf16_sdpa_bounds(*(t.double() for t in (q, k, v, dout)),
                                             is_causal=causal)
    for name, g, w, b in zip(("out", "dq", "dk", "dv"),
                             (got, *(t.grad for t in leaves_)), want, bound):
        assert g.dtype == torch.bfloat16, name
        limit = b + reference.U * (w.abs() + b)
        err = (g.double() - w).abs()
        assert bool((err <= limit).all()), (
            f"{name}: error {float(err.max()):.3g}, worst error / bound "
            f"{float((err / limit).max()):.3g}")


def test_multihead_attention_bf16(seed):
    """A bfloat16 module: attn's bf16 attention between PyTorch's projections,
    gradients into its bfloat16 parameters; asked for the weights, PyTorch's own
    forward (attn forms them in float32 only)."""
    mha = attn.torch.MultiheadAttention(16, 4, batch_first=True).bfloat16()
    x = torch.randn(2, 9, 16).bfloat16()
    out, weights = mha(x, x, x, need_weights=False)
    assert out.dtype == torch.bfloat16 and weights is None
    out.float().square().sum().backward()
    assert mha.in_proj_weight.grad.dtype == torch.bfloat16
    assert float(mha.in_proj_weight.grad.abs().sum()) > 0
    _, weights = mha(x, x, x, need_weights=True)
    assert weights.shape == (2, 9, 9)


def test_bad_input(seed):
    q = torch.randn(2, 3, 5, 8)
    with pytest.raises(TypeError, match="query must be float32 or bfloat16, not torch.float64"):
        attn.torch.scaled_dot_product_attention(q.double(), q, q)
    with pytest.raises(TypeError, match="key must be a torch.Tensor, not ndarray"):
        attn.torch.scaled_dot_product_attention(q, q.numpy(), q)
    with pytest.raises(ValueError, match="cannot both be set"):
        attn.torch.scaled_dot_product_attention(q, q, q, attn_mask=torch.ones(5, 5) > 0,
                                                is_causal=True)
    with pytest.raises(attn.AttnValueError, match="broadcast"):
        attn.torch.scaled_dot_product_attention(q, q, q, attn_mask=torch.ones(4, 5) > 0)
    with pytest.raises(attn.AttnValueError, match="dropout_p"):
        attn.torch.scaled_dot_product_attention(q, q, q, dropout_p=1.5)
    with pytest.raises(TypeError, match="query, key and value must have one dtype"):
        attn.torch.scaled_dot_product_attention(q.bfloat16(), q, q)
    mha = attn.torch.MultiheadAttention(8, 2)
    with pytest.raises(TypeError, match="must be float32"):
        mha.double()(q[0].double(), q[0].double(), q[0].double())
    copy.deepcopy(mha)  # a module like any other
