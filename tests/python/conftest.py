"""Shared by the Python package's tests: a fresh seed per test, printed so that a
failure can be repeated (ATTN_TEST_SEED=N repeats one), and the error measure of
the conformance tests (max|got - want| / max|want|, tests/conformance/common.py)."""
import os
import secrets
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conformance"))
from common import rel_error  # noqa: E402,F401

# The bound of every float32 result against float64, as in the C conformance tests.
TOLERANCE = 1e-5


@pytest.fixture
def seed():
    value = int(os.environ.get("ATTN_TEST_SEED") or secrets.randbits(31))
    print(f"seed {value} (repeat with ATTN_TEST_SEED={value})")
    torch.manual_seed(value)
    return value


@pytest.fixture
def rng(seed):
    return np.random.default_rng(seed)


def assert_close(got, want, what):
    err = rel_error(got, want)
    assert err <= TOLERANCE, f"{what}: relative error {err:.3g} > {TOLERANCE}"
