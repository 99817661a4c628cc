"""Helpers shared by the conformance scripts.

Each script makes random cases, writes each case's inputs (and a module's weights)
as safetensors files, runs attn_conform on them, and compares what it wrote with a
float64 PyTorch reference. The error of a tensor is max|attn - reference| divided
by max|reference| (the largest absolute difference when the reference is all
zeros). A case passes when every compared tensor is within TOLERANCE.

Some random cases are ill-conditioned: a gradient that is a small difference of
large terms (head_dim 1, a softmax over one or two keys, a weight gradient summed
over a few rows that cancel). No float32 computation resolves those to TOLERANCE:
different float32 orderings of the same formula, PyTorch's among them, scatter by
more. Every case is measured for it, and a tensor is ill-conditioned when
  - PyTorch's own float32 result misses float64 by more than TOLERANCE / 4, or
  - a relative perturbation of 2^-24 (one float32 rounding) of every input and
    weight moves the float64 result by more than TOLERANCE / 10 (the largest
    change over SENSITIVITY_TRIALS random perturbations), or
  - a relative perturbation of 2^-24 of every intermediate result of the
    backward pass moves the float64 gradients by more than TOLERANCE / 4 (the
    largest change over ROUNDING_TRIALS; see RoundingNoise).
The first alone depends on the order PyTorch's BLAS sums in. A Bahdanau query
weight gradient of one entry, cancelling to 1e-3 of its terms, missed float64 by
1.7e-6 in float32 on Debian's reference BLAS and by 2.5e-5 on OpenBLAS: it was
held to TOLERANCE on one machine and not on the other. The third criterion does
not depend on a library's order: a rounding of every backward result is what
any float32 ordering does, and it moved that gradient by 1.8e-5.
Such a tensor is still compared, against CONDITION_FACTOR times the larger of the
two, or TOLERANCE if that is larger. The error table shows the tensors held to
TOLERANCE; a line after it counts the ill-conditioned ones and gives the largest
ratio of attn's error to their condition measure.

A run's case seeds come from the run seed (os.urandom unless --seed); a single
case repeats with --case-seed.
"""

import argparse
import contextlib
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

import st

TOLERANCE = 1e-5
FLOAT32_ILL_CONDITIONED = TOLERANCE / 4
SENSITIVITY_ILL_CONDITIONED = TOLERANCE / 10
SENSITIVITY_TRIALS = 3
ROUNDING_TRIALS = 2
CONDITION_FACTOR = 16


class RoundingNoise(TorchDispatchMode):
    """While active, every float64 tensor an operator makes is multiplied by
    1 +- 2^-24, the sign drawn from generator: one float32 rounding of each
    result. Views and in-place results are left alone, since a copy in their
    place would break their aliasing."""

    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if any(result.alias_info is not None for result in func._schema.returns):
            return out

        def round_once(t):
            if not isinstance(t, torch.Tensor) or t.dtype != torch.float64 or t.numel() == 0:
                return t
            sign = torch.randint(0, 2, t.shape, generator=self.generator, dtype=torch.float64)
            return t * (1.0 + (2.0 * sign - 1.0) * 2.0 ** -24)

        return tree_map(round_once, out)


@contextlib.contextmanager
def rounded_backward(generator):
    """Runs every backward pass started in it (Tensor.backward goes through
    torch.autograd.backward; torch.autograd.grad) under RoundingNoise. The
    forward pass stays exact, so the scripts' own checks that two forward
    computations agree still hold, and greedy decoding picks the same tokens."""
    backward, grad = torch.autograd.backward, torch.autograd.grad

    def noisy(function):
        def run(*args, **kwargs):
            with RoundingNoise(generator):
                return function(*args, **kwargs)
        return run

    torch.autograd.backward, torch.autograd.grad = noisy(backward), noisy(grad)
    try:
        yield
    finally:
        torch.autograd.backward, torch.autograd.grad = backward, grad


class DriverError(Exception):
    """attn_conform failed or wrote something unreadable."""


def parse_args(description, default_cases=100):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--driver", required=True, help="path of attn_conform")
    parser.add_argument("--cases", type=int, default=default_cases,
                        help=f"number of random cases (default {default_cases})")
    parser.add_argument("--seed", type=int, help="run seed, to repeat a run")
    parser.add_argument("--case-seed", type=int, help="run only the case with this seed")
    parser.add_argument("--keep", metavar="DIR",
                        help="copy the files of failing cases into DIR")
    parser.add_argument("--verbose", action="store_true", help="print every case")
    return parser.parse_args()


def new_seed():
    return int.from_bytes(os.urandom(8), "little") >> 1


def case_seeds(run_seed, count):
    rng = np.random.default_rng(run_seed)
    return [int(s) for s in rng.integers(0, 2**62, size=count)]


# ---- numbers ----

def f32(x):
    """x as a float32 numpy array (the values attn sees)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def tensor(x, dtype=torch.float64, grad=False):
    """A torch tensor of dtype (float64 or float32) holding the values of x,
    exactly for float32 x."""
    t = torch.from_numpy(np.array(x, dtype=np.float64)).to(dtype)
    return t.requires_grad_(grad)


def f64(x, grad=False):
    return tensor(x, torch.float64, grad)


def perturbed_tensors(tensors, perturb):
    """The floating-point arrays of tensors passed through perturb; masks of
    bool or integer type as they are."""
    return {name: perturb(x) if np.issubdtype(np.asarray(x).dtype, np.floating) else x
            for name, x in tensors.items()}


def perturbed_module(module, perturb):
    """A float64 copy of module with every parameter passed through perturb."""
    module = copy.deepcopy(module).double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.from_numpy(perturb(p.numpy())))
    return module


def normal32(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def rel_error(got, want):
    """max|got - want| / max|want| over the finite entries of want; entries that
    are -inf or +inf in want must be the same in got. The absolute difference
    when want is all zeros; inf on a shape mismatch or a NaN."""
    got = np.asarray(got, dtype=np.float64)
    if isinstance(want, torch.Tensor):
        want = want.detach().cpu().numpy()
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    if got.size == 0:
        return 0.0
    if np.isnan(got).any() or np.isnan(want).any():
        return float("inf")
    finite = np.isfinite(want)
    if (got[~finite] != want[~finite]).any() or not np.isfinite(got[finite]).all():
        return float("inf")
    if not finite.any():
        return 0.0
    diff = np.abs(got[finite] - want[finite]).max()
    scale = np.abs(want[finite]).max()
    return float(diff / scale) if scale > 0 else float(diff)


def masked_softmax(scores):
    """softmax over the last axis where a row whose every entry is -inf gives
    weights 0 (and gradient 0) instead of NaN: attn's rule for fully masked rows."""
    empty = torch.isneginf(scores).all(dim=-1, keepdim=True)
    weights = torch.softmax(scores.masked_fill(empty, 0.0), dim=-1)
    return weights.masked_fill(empty, 0.0)


def bits_equal(a, b):
    """True if two float32 arrays are equal bit for bit."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


# ---- one case ----

class Case:
    """The seed, config and results of one case."""

    def __init__(self, index, seed, directory):
        self.index = index
        self.seed = seed
        self.dir = directory
        self.rng = np.random.default_rng(seed)
        self.config = {}
        self.errors = {}    # tensor name -> relative error
        self.problems = []  # messages of failed checks
        self.tags = set()   # what the case covers, counted in the report
        self.tolerance = {}  # tensor name -> its bound, where ill-conditioned
        self.condition = {}  # tensor name -> the condition measure behind that bound
        self.ratio = 0.0     # largest error / condition measure of those tensors

    def compare(self, name, got, want, tolerance=None):
        err = rel_error(got, want)
        if tolerance is None:
            tolerance = self.tolerance.get(name, TOLERANCE)
        if name in self.condition:  # reported as a ratio, not in the error table
            self.ratio = max(self.ratio, err / self.condition[name])
        else:
            self.errors[name] = max(err, self.errors.get(name, 0.0))
        if not err <= tolerance:
            self.problems.append(f"{name}: relative error {err:.3g} > {tolerance:g}")

    def compare_outputs(self, outputs, reference):
        """Every reference tensor against the driver's output of its name; an
        output without a reference is a problem too."""
        extra = set(outputs) - set(reference)
        self.require(not extra, f"unexpected outputs: {sorted(extra)}")
        for name, want in reference.items():
            got = self.output(outputs, name)
            if got is not None:
                self.compare(name, got, want)

    def require(self, condition, message):
        if not condition:
            self.problems.append(message)

    def measure_condition(self, reference, reference32, perturbed):
        """Sets the bound of each ill-conditioned tensor (see the module's doc).
        reference: float64 results; reference32: PyTorch's float32 results of the
        same computation; perturbed(perturb): float64 results with every input
        and weight x replaced by perturb(x)."""
        rounding = dict.fromkeys(reference, 0.0)
        for trial in range(ROUNDING_TRIALS):
            with rounded_backward(torch.Generator().manual_seed(self.seed + trial)):
                moved = perturbed(lambda x: np.asarray(x, dtype=np.float64))
            for name, want in reference.items():
                rounding[name] = max(rounding[name], rel_error(moved[name], want))
        sensitivity = dict.fromkeys(reference, 0.0)
        for trial in range(SENSITIVITY_TRIALS):
            rng = np.random.default_rng([self.seed, trial])

            def perturb(x):
                x = np.asarray(x, dtype=np.float64)
                return x * (1.0 + rng.choice([-1.0, 1.0], size=x.shape) * 2.0 ** -24)

            moved = perturbed(perturb)
            for name, want in reference.items():
                sensitivity[name] = max(sensitivity[name], rel_error(moved[name], want))
        self.float32_error = 0.0
        for name, want in reference.items():
            float32_error = rel_error(reference32[name], want)
            self.float32_error = max(self.float32_error, float32_error)
            if (float32_error > FLOAT32_ILL_CONDITIONED
                    or sensitivity[name] > SENSITIVITY_ILL_CONDITIONED
                    or rounding[name] > FLOAT32_ILL_CONDITIONED):
                self.condition[name] = max(float32_error, sensitivity[name], rounding[name])
                self.tolerance[name] = max(TOLERANCE, CONDITION_FACTOR * self.condition[name])
        if self.condition:
            self.tags.add("ill-conditioned")

    def measured_reference(self, run, module, tensors):
        """The reference: run(module, tensors, dtype) in float64, after measuring
        its condition (measure_condition) from run in float32 and in float64 with
        module's weights (module may be None) and the floating-point arrays of
        tensors perturbed."""
        reference = run(module, tensors, torch.float64)
        self.measure_condition(
            reference, run(module, tensors, torch.float32),
            lambda perturb: run(None if module is None else perturbed_module(module, perturb),
                                perturbed_tensors(tensors, perturb), torch.float64))
        return reference

    def write_inputs(self, tensors):
        """inputs.safetensors: the tensors and the config, one JSON value per key."""
        metadata = {k: json.dumps(v) for k, v in self.config.items()}
        st.save(os.path.join(self.dir, "inputs.safetensors"), tensors, metadata)

    def write_weights(self, state_dict):
        st.save(os.path.join(self.dir, "weights.safetensors"),
                {k: f32(v) for k, v in state_dict.items()})

    def run_driver(self, driver, kind):
        """Runs attn_conform and returns the tensors of outputs.safetensors."""
        try:
            proc = subprocess.run([driver, kind, self.dir], capture_output=True,
                                  text=True, timeout=120)
        except subprocess.TimeoutExpired:
            raise DriverError("attn_conform did not finish in 120 s") from None
        if proc.returncode != 0:
            how = (f"was killed by signal {-proc.returncode}" if proc.returncode < 0
                   else f"exited with status {proc.returncode}")
            raise DriverError(f"attn_conform {how}: {proc.stderr.strip()}")
        try:
            outputs, _ = st.load(os.path.join(self.dir, "outputs.safetensors"))
        except (OSError, ValueError, KeyError) as e:
            raise DriverError(f"outputs.safetensors is unreadable: {e}") from None
        return outputs

    def output(self, outputs, name):
        if name not in outputs:
            self.problems.append(f"outputs.safetensors has no tensor {name!r}")
            return None
        return outputs[name]

    def check_saved_state(self, make_module, original):
        """saved_weights.safetensors must load into a fresh float32 module with
        load_state_dict(strict=True) and give back the original values bit for bit."""
        path = os.path.join(self.dir, "saved_weights.safetensors")
        try:
            saved, _ = st.load(path)
        except (OSError, ValueError, KeyError) as e:
            self.problems.append(f"saved_weights.safetensors is unreadable: {e}")
            return
        for name, array in saved.items():
            self.require(array.dtype == np.float32,
                         f"saved_weights: {name} has dtype {array.dtype}, not float32")
        module = make_module().float()
        try:
            module.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32))
                                    for k, v in saved.items()}, strict=True)
        except (RuntimeError, KeyError) as e:
            self.problems.append(f"saved_weights: load_state_dict(strict=True) failed: {e}")
            return
        for name, value in module.state_dict().items():
            self.require(bits_equal(value.numpy(), original[name]),
                         f"saved_weights: {name} differs from the weights loaded")
        self.errors["saved_weights"] = 0.0 if not any(
            p.startswith("saved_weights") for p in self.problems) else float("inf")


# ---- the run ----

class Report:
    """The largest error of each tensor name over the cases, and how many cases
    compared it."""

    def __init__(self):
        self.worst = {}
        self.count = {}
        self.tags = {}

    def add(self, case):
        for name, err in case.errors.items():
            self.worst[name] = max(err, self.worst.get(name, 0.0))
            self.count[name] = self.count.get(name, 0) + 1
        for tag in case.tags:
            self.tags[tag] = self.tags.get(tag, 0) + 1

    def print_table(self):
        width = max([len(n) for n in self.worst] + [6])
        print(f"{'tensor':<{width}}  {'max rel error':>13}  {'cases':>5}")
        for name in sorted(self.worst):
            print(f"{name:<{width}}  {self.worst[name]:>13.3e}  {self.count[name]:>5}")
        if self.tags:
            print("cases with: " + ", ".join(f"{tag} {n}" for tag, n in sorted(self.tags.items())))


def main(kind, description, make_config, run_case, default_cases=100):
    """Runs the cases: make_config(case) fills case.config from case.rng, then
    run_case(case, driver) writes the files, runs the driver and compares."""
    args = parse_args(description, default_cases)
    torch.set_num_threads(1)
    run_seed = args.seed if args.seed is not None else new_seed()
    if args.case_seed is not None:
        seeds = [args.case_seed]
        print(f"{kind}: one case, seed {args.case_seed}")
    else:
        seeds = case_seeds(run_seed, args.cases)
        print(f"{kind}: {len(seeds)} cases, run seed {run_seed} (repeat with --seed {run_seed})")
    sys.stdout.flush()

    report = Report()
    failed = []
    worst_float32 = 0.0
    ill_conditioned = 0
    worst_ratio = 0.0
    start = time.time()
    with tempfile.TemporaryDirectory(prefix=f"attn_conform_{kind}_") as tmp:
        for index, seed in enumerate(seeds, start=1):
            directory = os.path.join(tmp, f"case{index}")
            os.mkdir(directory)
            case = Case(index, seed, directory)
            make_config(case)
            try:
                run_case(case, args.driver)
            except DriverError as e:
                case.problems.append(str(e))
            except Exception:  # a bug in the script or an unexpected output: report the case
                case.problems.append("exception:\n" + traceback.format_exc())
            report.add(case)
            worst_float32 = max(worst_float32, getattr(case, "float32_error", 0.0))
            ill_conditioned += len(case.condition)
            worst_ratio = max(worst_ratio, case.ratio)
            if case.problems:
                failed.append(case)
                print(f"FAIL case {index}, seed {seed} (repeat with --case-seed {seed})")
                print(f"  config: {json.dumps(case.config, sort_keys=True)}")
                for problem in case.problems:
                    print(f"  {problem}")
                if args.keep:
                    kept = os.path.join(args.keep, f"{kind}_{seed}")
                    shutil.copytree(directory, kept, dirs_exist_ok=True)
                    print(f"  files kept in {kept}")
            elif args.verbose:
                worst = max(case.errors, key=case.errors.get, default="-")
                print(f"ok   case {index}, seed {seed}, worst {worst} "
                      f"{case.errors.get(worst, 0.0):.2e} (PyTorch float32: "
                      f"{getattr(case, 'float32_error', 0.0):.2e}): "
                      f"{json.dumps(case.config, sort_keys=True)}")
            sys.stdout.flush()
            shutil.rmtree(directory)

    print()
    report.print_table()
    elapsed = time.time() - start
    run = len(seeds)
    print(f"PyTorch float32 against float64: at most {worst_float32:.3e}")
    if ill_conditioned:
        print(f"ill-conditioned tensors: {ill_conditioned}, held to {CONDITION_FACTOR} times "
              f"their condition measure; attn's error reached {worst_ratio:.2f} times it")
    print(f"\n{kind}: {run - len(failed)} of {run} cases passed "
          f"(tolerance {TOLERANCE:g}) in {elapsed:.1f} s")
    if failed:
        print(f"{kind}: FAILED, case seeds: {' '.join(str(c.seed) for c in failed)}")
        if args.case_seed is None:
            print(f"{kind}: repeat the run with --seed {run_seed}")
        return 1
    return 0
