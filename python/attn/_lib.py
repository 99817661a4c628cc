"""The C library under the package: found and loaded once, its version checked
against the one this package was built with, its functions declared, and every
failing call turned into an exception that carries attn's own message.

The library is found, in order, at the path in the environment variable
ATTN_LIBRARY, at the path CMake wrote into _build.py (the build tree's library,
or the installed one), or by the dynamic loader's search for libattn.so.0.
ctypes releases the GIL for the length of every call, so Python threads run
while a kernel does."""
import ctypes
import os

try:
    from . import _build
except ImportError:  # the source tree itself, not a build or an installation
    _build = None


class AttnError(Exception):
    """A failure reported by libattn; `status` is its attn_status name."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


class AttnValueError(AttnError, ValueError):
    """A bad argument, shape or file contents (attn's invalid argument, format,
    numeric)."""


class AttnMemoryError(AttnError, MemoryError):
    """Out of memory."""


class AttnOSError(AttnError, OSError):
    """A file could not be opened, read, written or renamed."""


class AttnKeyError(AttnError, KeyError):
    """A named tensor or key is missing."""

    def __str__(self):  # KeyError would quote the message
        return self.args[0]


class AttnNotImplementedError(AttnError, NotImplementedError):
    """Valid, but not implemented (a dtype, for one)."""


# attn_status (attn/core.h) -> the exception raised for it.
_ERRORS = {1: AttnValueError, 2: AttnMemoryError, 3: AttnOSError, 4: AttnValueError,
           5: AttnKeyError, 6: AttnValueError, 7: AttnNotImplementedError}


def _find():
    path = os.environ.get("ATTN_LIBRARY")
    if path:
        return path
    if _build is not None and os.path.exists(_build.LIBRARY):
        return _build.LIBRARY
    return "libattn.so.0"


def _load():
    path = _find()
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise ImportError(f"attn: cannot load the library {path}: {e} (build it, install it, "
                          "or set ATTN_LIBRARY to its path)") from e
    lib.attn_version.restype = ctypes.c_char_p
    lib.attn_version.argtypes = []
    found = lib.attn_version().decode()
    wanted = _build.VERSION if _build is not None else found
    if found != wanted:
        raise ImportError(f"attn: the library {path} is version {found}, but this package is "
                          f"{wanted}; install both from the same build")
    return lib, found


lib, version = _load()

lib.attn_last_error.restype = ctypes.c_char_p
lib.attn_last_error.argtypes = []
lib.attn_status_string.restype = ctypes.c_char_p
lib.attn_status_string.argtypes = [ctypes.c_int]


def check(status):
    """Raises the exception for a failing attn_status, with attn's message."""
    if status != 0:
        message = lib.attn_last_error().decode(errors="replace")
        name = lib.attn_status_string(status).decode()
        raise _ERRORS.get(status, AttnError)(message or name, name)


lib.attn_struct_size.restype = ctypes.c_size_t
lib.attn_struct_size.argtypes = [ctypes.c_char_p]


checked_structs = set()  # every copy check_sizes has checked (a test sees that all are)


def check_sizes(*pairs):
    """Checks each (ctypes.Structure, C struct name) copy against the size the
    library reports: a copy that differs (a package and a library of different
    builds) would read and write the wrong bytes."""
    for struct, name in pairs:
        checked_structs.add(struct)
        theirs, ours = lib.attn_struct_size(name.encode()), ctypes.sizeof(struct)
        if theirs != ours:
            raise ImportError(f"attn: the library's {name} is {theirs} bytes, but this "
                              f"package's copy of it is {ours}; install both from the same "
                              f"build")


def declare(name, *argtypes, restype=ctypes.c_int):
    """Declares the library function `name`; returns it."""
    f = getattr(lib, name)
    f.argtypes = list(argtypes)
    f.restype = restype
    return f
