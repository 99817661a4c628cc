"""attn.scaled_dot_product_attention and its backward from NumPy, against the
float64 formula in PyTorch on fresh random inputs: every shape of leading
dimensions, every mask kind, causal, window, ALiBi, scale and dropout; the
threads; and every bad input raising a Python exception with a clear message."""
import ctypes
import threading

import numpy as np
import pytest
import torch

import attn
from attn._lib import lib
from conftest import assert_close
import reference

lib.attn_uniform_at.restype = ctypes.c_float
lib.attn_uniform_at.argtypes = [ctypes.c_uint64, ctypes.c_uint64]


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def check_against_reference(rng, lead, Lq, Lk, D, Dv, attn_kwargs, ref_kwargs):
    q, k, v = randn(rng, *lead, Lq, D), randn(rng, *lead, Lk, D), randn(rng, *lead, Lk, Dv)
    out, lse = attn.scaled_dot_product_attention(q, k, v, return_lse=True, **attn_kwargs)
    t = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (q, k, v)]
    want = reference.sdpa(*t, **ref_kwargs)
    assert_close(out, want, "out")
    dout = randn(rng, *out.shape)
    want.backward(torch.tensor(dout, dtype=torch.float64))
    grads = attn.scaled_dot_product_attention_backward(dout, q, k, v, lse, **attn_kwargs)
    for name, got, ref in zip("qkv", grads, t):
        assert_close(got, ref.grad, "d" + name)
    return q, k, v, lse


@pytest.mark.parametrize("lead", [(), (3,), (2, 3), (2, 1, 2)])
def test_shapes(rng, lead):
    check_against_reference(rng, lead, 17, 23, 16, 8, {}, {})


def test_lse(rng):
    q, k, v = randn(rng, 2, 3, 9, 8), randn(rng, 2, 3, 12, 8), randn(rng, 2, 3, 12, 8)
    _, lse = attn.scaled_dot_product_attention(q, k, v, return_lse=True)
    scores = torch.tensor(q, dtype=torch.float64) @ torch.tensor(k, dtype=torch.float64).mT
    assert_close(lse, torch.logsumexp(scores / np.sqrt(8), dim=-1), "lse")


@pytest.mark.parametrize("mask_shape", [(13, 19), (1, 19), (2, 1, 13, 19), (3, 1, 19)])
def test_bool_mask(rng, mask_shape):
    mask = rng.random(mask_shape) < 0.7
    mask[..., 0] = True  # no row with every key masked (attn gives 0 there, PyTorch NaN)
    check_against_reference(rng, (2, 3), 13, 19, 8, 8, {"attn_mask": mask},
                            {"attn_mask": torch.tensor(mask)})


def test_float_mask(rng):
    mask = randn(rng, 3, 13, 19)
    check_against_reference(rng, (2, 3), 13, 19, 8, 8, {"attn_mask": mask},
                            {"attn_mask": torch.tensor(mask)})


def test_causal_window_alibi_scale(rng):
    slopes = rng.random(4).astype(np.float32)
    kwargs = {"is_causal": True, "window": 5, "alibi_slopes": slopes, "scale": 0.3}
    check_against_reference(rng, (2, 4), 21, 21, 16, 16, kwargs,
                            dict(kwargs, alibi_slopes=torch.tensor(slopes)))


def test_dropout(rng, seed):
    B, H, L, p = 2, 2, 9, 0.25
    draws = np.array([lib.attn_uniform_at(seed, i) for i in range(B * H * L * L)])
    keep = torch.tensor(draws.reshape(B, H, L, L) >= p)
    kwargs = {"dropout_p": p, "dropout_seed": seed}
    check_against_reference(rng, (B, H), L, L, 8, 8, kwargs,
                            {"keep": keep, "dropout_p": p})


def test_threads_do_not_change_results(rng):
    q, k, v = randn(rng, 2, 4, 300, 32), randn(rng, 2, 4, 300, 32), randn(rng, 2, 4, 300, 32)
    threads = attn.get_num_threads()
    try:
        attn.set_num_threads(1)
        one = attn.scaled_dot_product_attention(q, k, v, is_causal=True)
        attn.set_num_threads(2)
        two = attn.scaled_dot_product_attention(q, k, v, is_causal=True)
    finally:
        attn.set_num_threads(threads)
    assert np.array_equal(one, two)
    assert attn.simd_variant() in ("avx512bf16", "avx512", "avx2", "scalar")


def test_python_threads_in_parallel(rng):
    """Calls from several Python threads at once give each its own right result."""
    inputs = [[randn(rng, 1, 2, 200, 16) for _ in range(3)] for _ in range(6)]
    alone = [attn.scaled_dot_product_attention(*x, is_causal=True) for x in inputs]
    together = [None] * len(inputs)

    def run(i):
        for _ in range(5):
            together[i] = attn.scaled_dot_product_attention(*inputs[i], is_causal=True)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(len(inputs))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for a, b in zip(alone, together):
        assert np.array_equal(a, b)


def test_gil_is_released(rng):
    """While a long kernel runs in one thread, Python runs in another: if the call
    held the GIL, this thread could not count at all until it returned."""
    q = randn(rng, 1, 8, 2048, 64)
    done = threading.Event()

    def run():
        for _ in range(3):
            attn.scaled_dot_product_attention(q, q, q)
        done.set()

    worker = threading.Thread(target=run)
    counted = 0
    worker.start()
    while not done.is_set():
        counted += 1
    worker.join()
    assert counted > 1000


def test_bad_input(rng):
    q = randn(rng, 2, 4, 8, 16)
    with pytest.raises(TypeError, match="q must be float32, not float64"):
        attn.scaled_dot_product_attention(q.astype(np.float64), q, q)
    with pytest.raises(TypeError, match="k must be a NumPy array, not list"):
        attn.scaled_dot_product_attention(q, [1.0], q)
    with pytest.raises(ValueError, match="v must be C-contiguous"):
        attn.scaled_dot_product_attention(q, q, np.swapaxes(q, 2, 3))
    with pytest.raises(ValueError, match="same leading dimensions"):
        attn.scaled_dot_product_attention(q, q[:1], q[:1])
    with pytest.raises(ValueError, match="same last dimension"):
        attn.scaled_dot_product_attention(q, randn(rng, 2, 4, 8, 8), q)
    with pytest.raises(ValueError, match="cannot both be set"):
        attn.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((8, 8), bool),
                                          is_causal=True)
    with pytest.raises(TypeError, match="attn_mask must be bool or float32, not int64"):
        attn.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((8, 8), np.int64))
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        attn.scaled_dot_product_attention(q, q, q, scale=float("nan"))
    with pytest.raises(ValueError, match="one slope per head"):
        attn.scaled_dot_product_attention(q, q, q, alibi_slopes=np.ones(3, np.float32))
    # The library's own checks, with its messages.
    with pytest.raises(attn.AttnValueError, match="window -1 is negative"):
        attn.scaled_dot_product_attention(q, q, q, window=-1)
    with pytest.raises(attn.AttnValueError, match="broadcast"):
        attn.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 8), bool))
    with pytest.raises(attn.AttnValueError, match="dropout_p"):
        attn.scaled_dot_product_attention(q, q, q, dropout_p=1.0)
    with pytest.raises(attn.AttnValueError, match="alibi"):
        attn.scaled_dot_product_attention(q, q, q, alibi_slopes=np.full(4, np.inf, np.float32))
    out, lse = attn.scaled_dot_product_attention(q, q, q, return_lse=True)
    with pytest.raises(ValueError, match="dout must have out's shape"):
        attn.scaled_dot_product_attention_backward(out[:1], q, q, q, lse)
    with pytest.raises(ValueError, match="needs the forward's dropout_seed"):
        attn.scaled_dot_product_attention_backward(out, q, q, q, lse, dropout_p=0.1)
    with pytest.raises(attn.AttnValueError, match="thread count 0 is outside 1..1024"):
        attn.set_num_threads(0)


@pytest.mark.parametrize("causal", [False, True])
def test_bf16(rng, causal):
    """precision="bf16" runs the bf16 kernels: float32 inputs rounded to bfloat16
    (to_bf16, as torch rounds), or bfloat16 bits given as uint16, the same results;
    every element within its derived bound of float64 attention on the rounded
    inputs (reference.bf16_sdpa_bounds)."""
    lead, L, D = (2, 3), 70, 16
    q, k, v, dout = (randn(rng, *lead, L, D) for _ in range(4))
    bits = [attn.functional.to_bf16(a) for a in (q, k, v, dout)]
    for a, b in zip((q, k, v, dout), bits):
        torch_bits = torch.from_numpy(a).to(torch.bfloat16).view(torch.int16).numpy()
        assert np.array_equal(b.view(np.int16), torch_bits)
    wide = [torch.from_numpy((b.astype(np.uint32) << 16).view(np.float32).astype(np.float64))
            for b in bits]
    want, bound = reference.bf16_sdpa_bounds(*wide, is_causal=causal)
    for inputs in ((q, k, v), bits[:3]):
        out, lse = attn.scaled_dot_product_attention(*inputs, is_causal=causal, return_lse=True,
                                                     precision="bf16")
        grads = attn.scaled_dot_product_attention_backward(
            dout if inputs[0] is q else bits[3], *inputs, lse, is_causal=causal,
            precision="bf16")
        for name, got, w, b in zip(("out", "dq", "dk", "dv"), (out, *grads), want, bound):
            assert got.dtype == np.float32
            err = np.abs(got - w.numpy())
            worst = np.unravel_index(np.argmax(err / b.numpy()), err.shape)
            assert np.all(err <= b.numpy()), (
                f"{name}{worst}: error {err[worst]:.3g} exceeds its bound {b.numpy()[worst]:.3g}")


def test_bf16_bad_input(rng):
    q = randn(rng, 2, 5, 8)
    with pytest.raises(ValueError, match="precision must be one of float32, bf16, not 'fp16'"):
        attn.scaled_dot_product_attention(q, q, q, precision="fp16")
    with pytest.raises(TypeError, match="q must hold bfloat16 bits as uint16, not int16"):
        attn.scaled_dot_product_attention(q.view(np.int16), q, q, precision="bf16")
    with pytest.raises(TypeError, match="q must be float32, not uint16"):
        attn.scaled_dot_product_attention(attn.functional.to_bf16(q), q, q)
