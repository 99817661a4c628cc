"""The package as a whole: it refuses a library of another version, and a path
that is no library, each with an ImportError that says what to do."""
import os
import shutil
import subprocess
import sys

import attn


def run_python(code, env=None, path=None):
    env = dict(os.environ, **(env or {}))
    if path:
        env["PYTHONPATH"] = path
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


def test_version_mismatch(tmp_path):
    copy = tmp_path / "attn"
    shutil.copytree(os.path.dirname(attn.__file__), copy)
    build = (copy / "_build.py").read_text().replace(f'"{attn.__version__}"', '"0.0.1"')
    (copy / "_build.py").write_text(build)
    run = run_python("import attn", path=str(tmp_path))
    assert run.returncode != 0
    assert f"is version {attn.__version__}, but this package is 0.0.1" in run.stderr


def test_not_a_library(tmp_path):
    fake = tmp_path / "libattn.so"
    fake.write_text("not a library")
    run = run_python("import attn", env={"ATTN_LIBRARY": str(fake)})
    assert run.returncode != 0
    assert "attn: cannot load the library" in run.stderr and "ATTN_LIBRARY" in run.stderr


def test_every_struct_copy_is_checked():
    """Each ctypes copy of a C struct in the package is checked against the
    library's size when the package loads."""
    import ctypes
    import inspect

    from attn import _lib, functional, layers, models, records
    copies = {cls for module in (functional, layers, models, records)
              for _, cls in inspect.getmembers(module, inspect.isclass)
              if issubclass(cls, ctypes.Structure) and cls.__module__ == module.__name__}
    assert copies and copies <= _lib.checked_structs, copies - _lib.checked_structs


def test_a_struct_of_another_size_is_refused():
    import ctypes

    import pytest

    from attn import _lib

    class Shorter(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int)]

    with pytest.raises(ImportError, match=r"the library's attn_mask is \d+ bytes, but this "
                                          "package's copy of it is 4"):
        _lib.check_sizes((Shorter, "attn_mask"))
    assert _lib.lib.attn_struct_size(b"attn_no_such_struct") == 0
