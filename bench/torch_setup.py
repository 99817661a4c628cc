"""How the benchmarks start PyTorch, the baseline attn is measured against: Debian's
PyTorch 1.13 (/usr/bin/python3) doing its matrix products in Debian's OpenBLAS built
on OpenMP (libopenblas0-openmp) with OPENBLAS_CORETYPE=SkylakeX on an AVX-512 CPU,
PyTorch's strongest setup on this machine.

The scripts that run PyTorch (compare.py, seq2seq.py, gpt.py) take --torch-blas DIR
(add_blas_option), start PyTorch with torch_env(threads, DIR) and print
blas_note(version, blas) with their tables; the PyTorch side (pytorch_attention.py,
torch_seq2seq.py, torch_gpt.py) reports the BLAS it loaded with blas_library().
"""

import glob
import os

# OpenBLAS for OpenMP runs PyTorch's matrix products on PyTorch's own OpenMP threads,
# not on a second pool competing with them for the cores.
OPENBLAS_DIRS = "/usr/lib/*-linux-gnu/openblas-openmp"


def openblas_coretype():
    """SkylakeX, OpenBLAS's AVX-512 kernels, where the CPU has AVX-512; else None
    (OpenBLAS's own choice: SkylakeX kernels would stop at an illegal instruction).
    OpenBLAS picks kernels by the CPU it recognises (it takes this AMD EPYC for a
    Cooperlake); naming them makes every run use the same ones."""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return "SkylakeX" if "avx512f" in line.split() else None
    return None


def default_blas_dir():
    """Debian's OpenBLAS for OpenMP if it is installed, else None: the system's
    libblas.so.3 (Debian's default is the reference BLAS, many times slower)."""
    for directory in sorted(glob.glob(OPENBLAS_DIRS)):
        if os.path.exists(os.path.join(directory, "libblas.so.3")):
            return directory
    return None


def add_blas_option(parser):
    parser.add_argument("--torch-blas", metavar="DIR", default=default_blas_dir(),
                        help="a directory holding the libblas.so.3 that PyTorch loads "
                             "(default: Debian's OpenBLAS for OpenMP if installed, else "
                             "the system's)")


KEEP_FREED_MEMORY = "glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824"


def torch_env(threads, blas_dir, generation=False):
    """The environment of a PyTorch process on threads threads, loading the
    libblas.so.3 in blas_dir (None: the system's); for generation, its threads
    spin as briefly before they sleep as attn generate's. Its malloc keeps freed
    memory as the attn tool's does."""
    threads = str(threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "OPENBLAS_NUM_THREADS": threads}
    if openblas_coretype():
        env["OPENBLAS_CORETYPE"] = openblas_coretype()
    # The attn tool waits passively for work (cli/main.c), so PyTorch's OpenMP does too.
    env.setdefault("OMP_WAIT_POLICY", "passive")
    if generation:
        env.setdefault("GOMP_SPINCOUNT", "1000")
    # The attn tool keeps freed memory for reuse (keep_freed_memory in cli/main.c),
    # so PyTorch's process does too.
    env.setdefault("GLIBC_TUNABLES", KEEP_FREED_MEMORY)
    if blas_dir:
        # PyTorch links libblas.so.3: the loader looks here before the system's.
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (blas_dir, os.environ.get("LD_LIBRARY_PATH")) if p)
    return env


def blas_library():
    """The file of the BLAS this process loaded, which runs PyTorch's matrix products
    (Debian picks it with the libblas.so.3 alternative, or LD_LIBRARY_PATH does)."""
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and os.path.basename(fields[5]).startswith("libblas"):
                return os.path.realpath(fields[5])
    return "none"


def blas_note(torch_version, blas):
    """One line for the tables: what PyTorch's matrix products ran on."""
    if "openblas" in blas:
        return (f"PyTorch {torch_version} on OpenBLAS ({blas}), "
                f"OPENBLAS_CORETYPE={openblas_coretype() or 'unset'}")
    return (f"WARNING: PyTorch {torch_version} ran on {blas}, not OpenBLAS, many times "
            f"slower: run `scripts/setup.sh bench` to install libopenblas0-openmp, or pass "
            f"--torch-blas DIR")
