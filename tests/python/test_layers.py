"""attn.layers against PyTorch in float64 on fresh random inputs: the score
functions, soft attention, hard attention in its three modes, MultiheadAttention
(against torch.nn.MultiheadAttention) and SeedMultiheadAttention (against the
seed article's class): outputs, attention weights, the gradients of the inputs
and of every parameter, state_dicts that PyTorch's modules saved, loaded from
dicts and from safetensors files; and every bad input raising a Python
exception with a clear message (attn's own where the library finds it)."""
import copy
import ctypes

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import attn
from attn import layers
from attn._lib import lib
from conftest import assert_close
import st  # tests/conformance, on the path through conftest
from test_seed_mha import MultiHeadAttention as SeedReference, RecordSoftmax

lib.attn_uniform_at.restype = ctypes.c_float
lib.attn_uniform_at.argtypes = [ctypes.c_uint64, ctypes.c_uint64]


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def leaf(a):
    """a float64 tensor holding a's values, whose gradient is wanted."""
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def f64(a):
    return torch.tensor(a, dtype=torch.float64)


def backprop(rng, want):
    """A random float32 gradient of want, backpropagated through it."""
    d = randn(rng, *want.shape)
    want.backward(f64(d))
    return d


def assert_backward(module, dout, names, leaves, one_input, m64):
    """module.backward(dout)'s input gradients against the float64 leaves' (their
    sum against the first leaf's when one array was every input), then the
    module's parameter gradients against m64's, name by name in its order."""
    grads = module.backward(dout)
    if one_input:
        assert_close(grads[0].astype(np.float64) + grads[1] + grads[2], leaves[0].grad,
                     " + ".join(names))
    else:
        for name, got, t in zip(names, grads, leaves):
            assert_close(got, t.grad, name)
    params = module.grads
    assert list(params) == [name for name, _ in m64.named_parameters()]
    for name, p in m64.named_parameters():
        assert_close(params[name], p.grad, "grad of " + name)


def uniform(seed, count, start=0):
    """attn_uniform_at(seed, start + i) for i < count, in float64."""
    return np.array([lib.attn_uniform_at(seed, start + i) for i in range(count)])


def excluded(rng, shape):
    """A random bool mask, True = excluded, that never excludes key 0 (so no row
    loses every key: PyTorch gives NaN there, attn zeros)."""
    m = rng.random(shape) < 0.4
    m[..., 0] = False
    return m


def float_mask(rng, shape):
    """Random float32 terms, -inf at some keys but never at key 0."""
    m = randn(rng, *shape)
    m[excluded(rng, shape)] = -np.inf
    return m


def torch_mask(m):
    """A mask as PyTorch takes it: bool as it is, float as float64."""
    return torch.from_numpy(m) if m.dtype == np.bool_ else f64(m)


def numpy_state(module):
    return {name: t.detach().numpy().copy() for name, t in module.state_dict().items()}


# ---- score functions ----

def test_score_dot(rng):
    q, k, scale = randn(rng, 2, 5, 8), randn(rng, 2, 7, 8), float(rng.uniform(0.1, 1.0))
    tq, tk = leaf(q), leaf(k)
    want = scale * tq @ tk.mT
    assert_close(layers.score_dot(q, k, scale), want, "scores")
    dq, dk = layers.score_dot_backward(backprop(rng, want), q, k, scale)
    assert_close(dq, tq.grad, "dq")
    assert_close(dk, tk.grad, "dk")


def test_score_general(rng):
    q, k, w = randn(rng, 3, 4, 6), randn(rng, 3, 5, 9), randn(rng, 6, 9)
    tq, tk, tw = leaf(q), leaf(k), leaf(w)
    want = tq @ tw @ tk.mT
    assert_close(layers.score_general(q, k, w), want, "scores")
    grads = layers.score_general_backward(backprop(rng, want), q, k, w)
    for name, got, t in zip(["dq", "dk", "dw"], grads, [tq, tk, tw]):
        assert_close(got, t.grad, name)


@pytest.mark.parametrize("bias", [True, False])
def test_score_additive(rng, bias):
    B, Lq, Lk, Dq, Dk, A = 2, 4, 6, 5, 7, 10
    arrays = [randn(rng, B, Lq, Dq), randn(rng, B, Lk, Dk), randn(rng, A, Dq), randn(rng, A, Dk),
              randn(rng, A)] + ([randn(rng, A)] if bias else [])
    tq, tk, twq, twk, tv, *tbias = [leaf(a) for a in arrays]
    qp = tq @ twq.T + (tbias[0] if bias else 0)
    want = torch.tanh(qp[:, :, None, :] + (tk @ twk.T)[:, None, :, :]) @ tv
    assert_close(layers.score_additive(*arrays), want, "scores")
    grads = layers.score_additive_backward(backprop(rng, want), *arrays)
    names = ["dq", "dk", "dwq", "dwk", "dv", "dbias"]
    for name, got, t in zip(names, grads, [tq, tk, twq, twk, tv] + tbias):
        assert_close(got, t.grad, name)
    assert bias or grads[5] is None


def test_score_additive_projected(rng):
    qp, kp, v = randn(rng, 2, 3, 8), randn(rng, 2, 6, 8), randn(rng, 8)
    tqp, tkp, tv = leaf(qp), leaf(kp), leaf(v)
    want_u = torch.tanh(tqp[:, :, None, :] + tkp[:, None, :, :])
    want = want_u @ tv
    scores, u = layers.score_additive_projected(qp, kp, v)
    assert_close(scores, want, "scores")
    assert_close(u, want_u, "u")
    grads = layers.score_additive_projected_backward(backprop(rng, want), u, v)
    for name, got, t in zip(["dqp", "dkp", "dv"], grads, [tqp, tkp, tv]):
        assert_close(got, t.grad, name)


# ---- soft and hard attention ----

B, LQ, LK, DV = 2, 4, 6, 5
MASKS = {"none": None, "bool (Lq, Lk)": (np.bool_, (LQ, LK)), "bool (Lk)": (np.bool_, (LK,)),
         "bool (B, 1, Lk)": (np.bool_, (B, 1, LK)), "float (B, Lq, Lk)": (np.float32, (B, LQ, LK))}


def scores_mask(rng, kind):
    """(attn's mask, the scores' masked term in float64): a bool mask keeps
    True, and always key 0."""
    if kind is None:
        return None, 0.0
    dtype, shape = kind
    if dtype == np.bool_:
        keep = ~excluded(rng, shape)
        return keep, torch.zeros(shape, dtype=torch.float64).masked_fill(
            ~torch.from_numpy(keep), float("-inf"))
    m = float_mask(rng, shape)
    return m, f64(m)


@pytest.mark.parametrize("kind", MASKS.values(), ids=MASKS.keys())
def test_soft_attention(rng, kind):
    scores, values = randn(rng, B, LQ, LK), randn(rng, B, LK, DV)
    mask, term = scores_mask(rng, kind)
    ts, tv = leaf(scores), leaf(values)
    want_weights = torch.softmax(ts + term, dim=-1)
    want = want_weights @ tv
    context, weights = layers.soft_attention(scores, values, mask)
    assert_close(context, want, "context")
    assert_close(weights, want_weights, "weights")
    dscores, dvalues = layers.soft_attention_backward(backprop(rng, want), weights, values)
    assert_close(dscores, ts.grad, "dscores")
    assert_close(dvalues, tv.grad, "dvalues")


def test_soft_attention_row_without_keys(rng):
    """attn's rule where PyTorch gives NaN: weights, context and gradients 0."""
    scores, values = randn(rng, 1, 2, 3), randn(rng, 1, 3, 4)
    keep = np.array([[True, False, True], [False, False, False]])
    context, weights = layers.soft_attention(scores, values, keep)
    assert not weights[0, 1].any() and not context[0, 1].any()
    dscores, _ = layers.soft_attention_backward(randn(rng, 1, 2, 4), weights, values)
    assert not dscores[0, 1].any()


def check_hard_backward(rng, context, index, weights, values, mode, tau, want, ts, tv):
    dscores, dvalues = layers.hard_attention_backward(backprop(rng, want), index, values,
                                                      weights, mode, tau)
    assert_close(dvalues, tv.grad, "dvalues")
    if mode == "gumbel":
        assert_close(dscores, ts.grad, "dscores")
    else:
        assert not dscores.any()


@pytest.mark.parametrize("kind", [None, MASKS["bool (Lq, Lk)"], MASKS["float (B, Lq, Lk)"]],
                         ids=["none", "bool", "float"])
def test_hard_attention_argmax(rng, kind):
    scores, values = randn(rng, B, LQ, LK), randn(rng, B, LK, DV)
    mask, term = scores_mask(rng, kind)
    ts, tv = leaf(scores), leaf(values)
    masked = ts + term
    want_index = masked.argmax(dim=-1)
    want = F.one_hot(want_index, LK).double() @ tv
    context, index, weights = layers.hard_attention(scores, values, mask)
    assert np.array_equal(index, want_index.numpy())
    assert_close(context, want, "context")
    assert_close(weights, torch.softmax(masked, dim=-1), "weights")
    # REINFORCE from the weights: d log p(index) / d scores = onehot(index) - weights.
    torch.log_softmax(masked, dim=-1).gather(-1, want_index[..., None]).sum().backward()
    assert_close(F.one_hot(torch.from_numpy(index).long(), LK) - weights, ts.grad, "REINFORCE")
    ts.grad = None
    check_hard_backward(rng, context, index, weights, values, "argmax", 1.0, want, ts, tv)


def test_hard_attention_sample(rng, seed):
    scores, values = randn(rng, B, LQ, LK), randn(rng, B, LK, DV)
    mask, term = scores_mask(rng, MASKS["bool (B, 1, Lk)"])
    ts, tv = leaf(scores), leaf(values)
    p = torch.softmax(ts + term, dim=-1).detach()
    # Inverse CDF: the first key whose cumulative weight passes the row's number.
    u = torch.from_numpy(uniform(seed, B * LQ).reshape(B, LQ, 1))
    want_index = (p.cumsum(dim=-1) > u).double().argmax(dim=-1)
    want = F.one_hot(want_index, LK).double() @ tv
    context, index, weights = layers.hard_attention(scores, values, mask, "sample", seed)
    assert np.array_equal(index, want_index.numpy())
    assert_close(context, want, "context")
    assert_close(weights, p, "weights")
    check_hard_backward(rng, context, index, weights, values, "sample", 1.0, want, ts, tv)


def test_hard_attention_gumbel(rng, seed):
    scores, values, tau = randn(rng, B, LQ, LK), randn(rng, B, LK, DV), 2.0
    mask, term = scores_mask(rng, MASKS["bool (Lq, Lk)"])
    ts, tv = leaf(scores), leaf(values)
    u = uniform(seed, B * LQ * LK).reshape(B, LQ, LK) + 2.0**-25
    g = torch.from_numpy(-np.log(-np.log(u)).astype(np.float32).astype(np.float64))
    y = torch.softmax((ts + term + g) / tau, dim=-1)
    want_index = y.argmax(dim=-1)
    # Straight-through: the forward takes the chosen row, the scores' gradient
    # follows y.
    hard = F.one_hot(want_index, LK).double()
    want = (hard - y.detach() + y) @ tv
    context, index, weights = layers.hard_attention(scores, values, mask, "gumbel", seed, tau)
    assert np.array_equal(index, want_index.numpy())
    assert_close(context, want, "context")
    assert_close(weights, y, "weights")
    check_hard_backward(rng, context, index, weights, values, "gumbel", tau, want, ts, tv)


# ---- MultiheadAttention ----

def torch_mha(E, H, **kwargs):
    """A float32 nn.MultiheadAttention with random biases (PyTorch starts them
    at 0, which would hide a bias left out)."""
    module = torch.nn.MultiheadAttention(E, H, **kwargs)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "bias" in name:
                p.uniform_(-0.5, 0.5)
    return module


MHA_CASES = {
    "defaults, from a file": dict(from_file=True),
    "batch_first, kdim, vdim, no bias, bool masks, weights per head": dict(
        batch_first=True, kdim=5, vdim=7, bias=False, padding=np.bool_,
        attn_mask=(np.bool_, 2), average_attn_weights=False),
    "float key_padding_mask": dict(padding=np.float32),
    "float 3-D attn_mask, bool key_padding_mask": dict(padding=np.bool_,
                                                       attn_mask=(np.float32, 3)),
    "is_causal, key_padding_mask, no weights": dict(is_causal=True, padding=np.bool_,
                                                    need_weights=False),
    "unbatched, masks": dict(unbatched=True, padding=np.bool_, attn_mask=(np.bool_, 3)),
    "self-attention, batch_first, is_causal": dict(self_attention=True, batch_first=True,
                                                   is_causal=True),
}


@pytest.mark.parametrize("case", MHA_CASES.values(), ids=MHA_CASES.keys())
def test_mha(rng, tmp_path, case):
    c = {**dict(batch_first=False, bias=True, kdim=None, vdim=None, padding=None, attn_mask=None,
                is_causal=False, need_weights=True, average_attn_weights=True, unbatched=False,
                self_attention=False, from_file=False), **case}
    E, H, Bn, Lq = 12, 3, 2, 4
    Lk = Lq if c["self_attention"] else 6
    config = {name: c[name] for name in ["bias", "kdim", "vdim", "batch_first"]}
    module = torch_mha(E, H, **config)
    mha = layers.MultiheadAttention(E, H, **config)
    if c["from_file"]:
        st.save(tmp_path / "mha.safetensors", numpy_state(module))
        mha.load_state_dict(str(tmp_path / "mha.safetensors"))
    else:
        mha.load_state_dict(numpy_state(module))

    def shaped(L, D):
        return (L, D) if c["unbatched"] else (Bn, L, D) if c["batch_first"] else (L, Bn, D)

    query = randn(rng, *shaped(Lq, E))
    key = query if c["self_attention"] else randn(rng, *shaped(Lk, c["kdim"] or E))
    value = query if c["self_attention"] else randn(rng, *shaped(Lk, c["vdim"] or E))
    batch = () if c["unbatched"] else (Bn,)
    masks = {}
    if c["padding"] == np.bool_:
        masks["key_padding_mask"] = excluded(rng, batch + (Lk,))
    elif c["padding"] == np.float32:
        masks["key_padding_mask"] = float_mask(rng, batch + (Lk,))
    if c["attn_mask"]:
        dtype, ndim = c["attn_mask"]
        shape = (Lq, Lk) if ndim == 2 else ((Bn if batch else 1) * H, Lq, Lk)
        masks["attn_mask"] = (excluded(rng, shape) if dtype == np.bool_ else
                              float_mask(rng, shape))
    torch_masks = {name: torch_mask(m) for name, m in masks.items()}
    if c["is_causal"]:  # PyTorch 1.13's module has no is_causal: the mask itself
        assert "attn_mask" not in masks
        torch_masks["attn_mask"] = torch.ones(Lq, Lk, dtype=torch.bool).triu(1)
    options = {name: c[name] for name in ["need_weights", "average_attn_weights"]}

    m64 = copy.deepcopy(module).double()
    tq = leaf(query)
    tk, tv = (tq, tq) if c["self_attention"] else (leaf(key), leaf(value))
    want, want_weights = m64(tq, tk, tv, **torch_masks, **options)
    out, weights = mha(query, key, value, **masks, is_causal=c["is_causal"], **options)
    assert_close(out, want, "out")
    if c["need_weights"]:
        assert_close(weights, want_weights, "weights")
    else:
        assert weights is None
    assert_backward(mha, backprop(rng, want), ["dquery", "dkey", "dvalue"], [tq, tk, tv],
                    c["self_attention"], m64)


def test_mha_dropout(rng, seed):
    """In training mode the weights are dropped, each kept where its number from
    dropout_seed is >= dropout; eval() stops it."""
    E, H, Bn, L, p = 8, 2, 2, 5, 0.25
    hd = E // H
    module = torch_mha(E, H)
    mha = layers.MultiheadAttention(E, H, dropout=p)
    mha.load_state_dict(numpy_state(module))
    x = randn(rng, L, Bn, E)
    out, weights = mha(x, x, x, average_attn_weights=False, dropout_seed=seed)

    m64 = copy.deepcopy(module).double()
    tx = leaf(x)
    keep = torch.from_numpy(uniform(seed, Bn * H * L * L).reshape(Bn, H, L, L) >= p)

    def heads(w, b):  # (L, B, E) -> (B, H, L, hd)
        return F.linear(tx, w, b).reshape(L, Bn, H, hd).permute(1, 2, 0, 3)

    q, k, v = (heads(w, b) for w, b in zip(m64.in_proj_weight.chunk(3),
                                           m64.in_proj_bias.chunk(3)))
    want_weights = torch.softmax(q @ k.mT / hd**0.5, dim=-1) * keep / (1 - p)
    want = m64.out_proj((want_weights @ v).permute(2, 0, 1, 3).reshape(L, Bn, E))
    assert_close(out, want, "out")
    assert_close(weights, want_weights, "weights")
    dquery, dkey, dvalue = mha.backward(backprop(rng, want))
    assert_close(dquery.astype(np.float64) + dkey + dvalue, tx.grad, "dx")
    for name, param in m64.named_parameters():
        assert_close(mha.grads[name], param.grad, "grad of " + name)

    out, _ = mha.eval()(x, x, x, dropout_seed=seed)
    assert_close(out, m64(tx, tx, tx)[0], "out in eval mode")


def test_mha_state_dict_and_parameters(rng):
    module = torch_mha(8, 2, kdim=3, vdim=5)
    want = numpy_state(module)
    mha = layers.MultiheadAttention(8, 2, kdim=3, vdim=5)
    assert (mha.kdim, mha.vdim, mha.head_dim) == (3, 5, 4)
    mha.load_state_dict({name: a.astype(np.float64) for name, a in want.items()})
    state = mha.state_dict()
    assert list(state) == list(want)
    assert all(np.array_equal(state[name], want[name]) for name in want)
    state["out_proj.bias"][:] = 7  # a copy: the module's own is unchanged
    assert np.array_equal(mha.state_dict()["out_proj.bias"], want["out_proj.bias"])
    mha.named_parameters()["out_proj.bias"][:] = 7  # a live view
    assert (mha.state_dict()["out_proj.bias"] == 7).all()
    assert [a.shape for a in mha.parameters()] == [a.shape for a in want.values()]

    # Gradients add up over backward calls, until zero_grad.
    q, k, v = randn(rng, 3, 2, 8), randn(rng, 4, 2, 3), randn(rng, 4, 2, 5)
    dout = randn(rng, 3, 2, 8)
    mha(q, k, v)
    mha.backward(dout)
    once = {name: g.copy() for name, g in mha.grads.items()}
    mha.backward(dout)
    for name, g in mha.grads.items():
        assert_close(g, 2 * once[name], "twice the grad of " + name)
    mha.zero_grad()
    assert not any(g.any() for g in mha.grads.values())

    # PyTorch's initialisation: biases 0, each projection within xavier's bound.
    fresh = layers.MultiheadAttention(8, 2, kdim=3, vdim=5, seed=1).state_dict()
    again = layers.MultiheadAttention(8, 2, kdim=3, vdim=5, seed=1).state_dict()
    assert all(np.array_equal(fresh[name], again[name]) for name in fresh)
    assert not fresh["in_proj_bias"].any() and not fresh["out_proj.bias"].any()
    assert np.abs(fresh["k_proj_weight"]).max() <= np.sqrt(6 / (8 + 3))

    # A view outlives close(): the memory goes with the last of them.
    views = mha.named_parameters()
    mha.close()
    assert (views["out_proj.bias"] == 7).all()
    with pytest.raises(ValueError, match="this MultiheadAttention is closed"):
        mha(q, k, v)
    with layers.MultiheadAttention(8, 2) as inside:
        inside.state_dict()
    with pytest.raises(ValueError, match="closed"):
        inside.state_dict()


# ---- SeedMultiheadAttention ----

@pytest.mark.parametrize("mask", ["none", "padding", "causal"])
def test_seed_mha(rng, tmp_path, mask):
    """The seed's class. padding: bool (N, 1, 1, Lk), every key of one sequence
    masked, which the seed's -1e20 fill makes uniform; causal: uint8
    (N, 1, Lq, Lk), self-attention (values is keys is query), from a dict."""
    E, H, N, Lq = 12, 3, 2, 4
    Lk = Lq if mask == "causal" else 6
    module = SeedReference(E, H)
    seed_mha = layers.SeedMultiheadAttention(E, H)
    if mask == "causal":
        seed_mha.load_state_dict(numpy_state(module))
    else:
        st.save(tmp_path / "seed.safetensors", numpy_state(module))
        seed_mha.load_state_dict(tmp_path / "seed.safetensors")
    query = randn(rng, N, Lq, E)
    if mask == "causal":
        values = keys = query
        m = np.ascontiguousarray(np.broadcast_to(np.tril(np.ones((Lq, Lk), np.uint8)),
                                                 (N, 1, Lq, Lk)))
    else:
        values, keys = randn(rng, N, Lk, E), randn(rng, N, Lk, E)
        m = None
        if mask == "padding":
            m = rng.random((N, 1, 1, Lk)) >= 0.3
            m[0] = False
    m64 = copy.deepcopy(module).double()
    tq = leaf(query)
    tk, tv = (tq, tq) if mask == "causal" else (leaf(keys), leaf(values))
    with RecordSoftmax() as record:
        want = m64(tv, tk, tq, None if m is None else torch.from_numpy(m))
    out, weights = seed_mha(values, keys, query, m, need_weights=True)
    assert_close(out, want, "out")
    assert_close(weights, record.result, "weights")
    # Without the weights, the fused kernel (the same up to rounding).
    assert_close(seed_mha(values, keys, query, m), want, "out without weights")
    assert_backward(seed_mha, backprop(rng, want), ["dvalues", "dkeys", "dquery"], [tv, tk, tq],
                    mask == "causal", m64)


# ---- bad input ----

def test_bad_scores(rng):
    q, k = randn(rng, 2, 3, 8), randn(rng, 2, 5, 8)
    with pytest.raises(TypeError, match="q must be float32, not float64"):
        layers.score_dot(q.astype(np.float64), k)
    with pytest.raises(TypeError, match="k must be a NumPy array, not list"):
        layers.score_dot(q, k.tolist())
    with pytest.raises(ValueError, match="k must be C-contiguous"):
        layers.score_dot(q, np.swapaxes(randn(rng, 2, 8, 5), 1, 2))
    with pytest.raises(ValueError, match=r"q must have shape \(B, Lq, D\), not \(3, 8\)"):
        layers.score_dot(q[0], k)
    with pytest.raises(ValueError, match=r"k must have shape \(B, Lk, D\) with D = 8, not"):
        layers.score_dot(q, randn(rng, 2, 5, 7))
    with pytest.raises(ValueError, match=r"k must have shape \(B, Lk, D\) with B = 2"):
        layers.score_dot(q, k[:1])
    with pytest.raises(attn.AttnValueError, match="scale nan is not finite"):
        layers.score_dot(q, k, float("nan"))
    with pytest.raises(attn.AttnValueError, match="B is 0; it must be at least 1"):
        layers.score_dot(q[:0], k[:0])
    with pytest.raises(ValueError, match=r"dscores must have shape \(B, Lq, Lk\) with Lk = 5"):
        layers.score_dot_backward(randn(rng, 2, 3, 4), q, k)
    with pytest.raises(ValueError, match=r"w must have shape \(Dq, Dk\) with Dk = 8"):
        layers.score_general(q, k, randn(rng, 8, 6))
    wq, wk, v = randn(rng, 4, 8), randn(rng, 4, 8), randn(rng, 4)
    with pytest.raises(ValueError, match=r"v must have shape \(A\) with A = 4, not \(5,\)"):
        layers.score_additive(q, k, wq, wk, randn(rng, 5))
    with pytest.raises(ValueError, match=r"bias must have shape \(A\) with A = 4"):
        layers.score_additive_backward(randn(rng, 2, 3, 5), q, k, wq, wk, v, randn(rng, 3))
    with pytest.raises(ValueError, match=r"kp must have shape \(B, Lk, A\) with A = 8"):
        layers.score_additive_projected(q, randn(rng, 2, 5, 4), randn(rng, 8))
    _, u = layers.score_additive_projected(q, k, randn(rng, 8))
    with pytest.raises(ValueError, match=r"v must have shape \(A\) with A = 8"):
        layers.score_additive_projected_backward(randn(rng, 2, 3, 5), u, randn(rng, 4))


def test_bad_soft_and_hard_attention(rng):
    scores, values = randn(rng, 2, 3, 5), randn(rng, 2, 5, 4)
    with pytest.raises(ValueError, match=r"values must have shape \(B, Lk, Dv\) with Lk = 5"):
        layers.soft_attention(scores, randn(rng, 2, 6, 4))
    with pytest.raises(TypeError, match="mask must be bool or float32, not int64"):
        layers.soft_attention(scores, values, np.ones((3, 5), np.int64))
    with pytest.raises(ValueError, match="mask must be C-contiguous"):
        layers.soft_attention(scores, values, np.ones((5, 3), bool).T)
    with pytest.raises(ValueError, match="mask must have 1 to 3 dimensions"):
        layers.soft_attention(scores, values, np.ones((1, 2, 3, 5), bool))
    with pytest.raises(attn.AttnValueError, match="does not broadcast to the scores' shape"):
        layers.soft_attention(scores, values, np.ones((4, 5), bool))
    _, weights = layers.soft_attention(scores, values)
    with pytest.raises(ValueError, match=r"dcontext must have shape \(B, Lq, Dv\) with Dv = 4"):
        layers.soft_attention_backward(randn(rng, 2, 3, 5), weights, values)
    with pytest.raises(ValueError, match="mode must be one of argmax, sample, gumbel, not 'max'"):
        layers.hard_attention(scores, values, mode="max")
    with pytest.raises(attn.AttnValueError, match="tau 0 is not finite and > 0"):
        layers.hard_attention(scores, values, mode="gumbel", tau=0.0)
    with pytest.raises(ValueError, match=r"seed must be in \[0, \d+\], not -1"):
        layers.hard_attention(scores, values, mode="sample", seed=-1)
    with pytest.raises(TypeError, match="seed must be an int, not float"):
        layers.hard_attention(scores, values, mode="sample", seed=1.5)
    context, index, weights = layers.hard_attention(scores, values)
    with pytest.raises(TypeError, match="index must be hard_attention's int32 NumPy array, "
                                        "not int64"):
        layers.hard_attention_backward(context, index.astype(np.int64), values)
    beyond = index.copy()
    beyond[1, 2] = 5
    with pytest.raises(attn.AttnValueError,
                       match=r"index 5 of query row 5 is neither a key in \[0, 5\) nor -1"):
        layers.hard_attention_backward(context, beyond, values)
    with pytest.raises(ValueError, match=r"index must have shape \(B, Lq\) with Lq = 3"):
        layers.hard_attention_backward(context, index[:, :2].copy(), values)
    with pytest.raises(ValueError, match="the backward of mode 'gumbel' needs the forward's "
                                         "weights"):
        layers.hard_attention_backward(context, index, values, mode="gumbel")


def test_bad_mha(rng):
    with pytest.raises(attn.AttnValueError, match="embed_dim 10 is not divisible by "
                                                  "num_heads 3"):
        layers.MultiheadAttention(10, 3)
    with pytest.raises(attn.AttnValueError, match=r"dropout 1 is outside \[0, 1\)"):
        layers.MultiheadAttention(12, 3, dropout=1.0)
    with pytest.raises(TypeError, match="embed_dim must be an int, not float"):
        layers.MultiheadAttention(12.0, 3)
    with pytest.raises(ValueError, match="num_heads must be in .*, not 4294967299"):
        layers.MultiheadAttention(12, 2**32 + 3)
    mha = layers.MultiheadAttention(12, 3, kdim=5)
    q, k, v = randn(rng, 4, 2, 12), randn(rng, 6, 2, 5), randn(rng, 6, 2, 12)
    with pytest.raises(ValueError, match="backward needs a successful forward first"):
        mha.backward(q)
    with pytest.raises(ValueError, match=r"query must have shape \(Lq, B, E\) with E = 12"):
        mha(randn(rng, 4, 2, 8), k, v)
    with pytest.raises(ValueError, match=r"key must have shape \(Lk, B, kdim\) with kdim = 5"):
        mha(q, v, v)
    with pytest.raises(ValueError, match=r"key must have shape \(Lk, B, kdim\) with B = 2"):
        mha(q, k[:, :1].copy(), v)
    with pytest.raises(ValueError, match=r"value must have shape \(Lk, B, vdim\) with Lk = 6"):
        mha(q, k, v[:5])
    with pytest.raises(ValueError, match=r"key must have shape \(Lk, kdim\), not \(6, 2, 5\)"):
        mha(q[:, 0].copy(), k, v)
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(B, Lk\) with "
                                         r"Lk = 6"):
        mha(q, k, v, key_padding_mask=np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match="key_padding_mask must be C-contiguous"):
        mha(q, k, v, key_padding_mask=np.zeros((6, 2), bool).T)
    with pytest.raises(TypeError, match="attn_mask must be bool or float32, not int32"):
        mha(q, k, v, attn_mask=np.zeros((4, 6), np.int32))
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(B\*H, Lq, Lk\) with "
                                         r"B\*H = 6"):
        mha(q, k, v, attn_mask=np.zeros((3, 4, 6), bool))
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(Lq, Lk\) with Lq = 4"):
        mha(q, k, v, attn_mask=np.zeros((6, 6), bool))
    mha(q, k, v)
    with pytest.raises(ValueError, match=r"dout must have out's shape \(4, 2, 12\)"):
        mha.backward(randn(rng, 4, 1, 12))


@pytest.mark.parametrize("module", ["mha", "seed"])
def test_bad_state_dict(rng, tmp_path, module):
    """A file or dict that does not fit fails naming the key, and leaves the
    parameters as they were."""
    if module == "mha":
        m, state = layers.MultiheadAttention(12, 3), numpy_state(torch_mha(12, 3))
        name = "out_proj.weight"
    else:
        m, state = layers.SeedMultiheadAttention(12, 3), numpy_state(SeedReference(12, 3))
        name = "fc_out.weight"
    before = m.state_dict()
    missing = {key: a for key, a in state.items() if key != name}
    misshapen = dict(state, **{name: state[name][:, 1:].copy()})
    unexpected = dict(state, extra=state[name])
    integer = dict(state, **{name: state[name].astype(np.int64)})
    path = str(tmp_path / "bad.safetensors")
    for tensors, error, message in [
            (missing, attn.AttnKeyError, f"missing key '{name}'"),
            (misshapen, attn.AttnValueError,
             rf"key '{name}' has shape \(12, 11\) in the file but \(12, 12\) in the module"),
            (unexpected, attn.AttnValueError, "unexpected key 'extra'"),
            (integer, attn.AttnNotImplementedError, f"key '{name}' has dtype I64")]:
        st.save(path, tensors)
        with pytest.raises(error, match=message):
            m.load_state_dict(path)
    with pytest.raises(attn.AttnOSError, match="cannot open"):
        m.load_state_dict(tmp_path / "absent.safetensors")
    for tensors, error, message in [
            (missing, KeyError, f"missing key '{name}'"),
            (misshapen, ValueError,
             rf"key '{name}' has shape \(12, 11\) in the dict but \(12, 12\) in the module"),
            (unexpected, ValueError, "unexpected key 'extra'"),
            (integer, TypeError, f"key '{name}' must be a float NumPy array, not int64"),
            (dict(state, **{name: state[name].tolist()}), TypeError,
             f"key '{name}' must be a float NumPy array, not list")]:
        with pytest.raises(error, match=message):
            m.load_state_dict(tensors)
    with pytest.raises(TypeError, match="a dict of arrays or a safetensors file path, not int"):
        m.load_state_dict(42)
    after = m.state_dict()
    assert all(np.array_equal(before[key], after[key]) for key in before)


def test_bad_seed_mha(rng):
    with pytest.raises(attn.AttnValueError, match="embed_size 10 is not divisible by heads 4"):
        layers.SeedMultiheadAttention(10, 4)
    m = layers.SeedMultiheadAttention(12, 3)
    x, y = randn(rng, 2, 4, 12), randn(rng, 2, 6, 12)
    with pytest.raises(ValueError, match=r"keys must have shape \(N, Lk, E\) with Lk = 6"):
        m(y, x, x)
    with pytest.raises(ValueError, match=r"query must have shape \(N, Lq, E\) with E = 12"):
        m(y, y, randn(rng, 2, 4, 8))
    with pytest.raises(TypeError, match="mask must be bool or uint8, not float32"):
        m(y, y, x, np.ones((2, 1, 1, 6), np.float32))
    with pytest.raises(attn.AttnValueError, match="does not broadcast to the scores' shape"):
        m(y, y, x, np.ones((2, 1, 1, 5), bool))
    with pytest.raises(ValueError, match="backward needs a successful forward first"):
        m.backward(x)
    m(y, y, x)
    with pytest.raises(ValueError, match=r"dout must have out's shape \(2, 4, 12\)"):
        m.backward(y)
