"""Loading the official python pickles (CIFAR) without running code and without trusting a size the
file declares: only what rebuilds a numpy array, and never more memory than the file accounts for.

Three layers, each before anything is allocated:

* every length the pickle declares (a string, bytes, a frame) must fit in the bytes that follow
  it, and every memo slot must be the next one, checked by reading the opcodes with
  :func:`pickletools.genops` first (CPython's unpickler allocates a declared length before reading
  it, and a memo table as large as the highest slot);
* the only globals are numpy's array rebuilder, its types and ``_codecs.encode``;
* an array is rebuilt as numpy pickles it, ``_reconstruct(ndarray, shape, dtype)`` for an empty
  placeholder, then ``__setstate__((version, shape, dtype, fortran, data))``. Both are checked:
  the placeholder may not be larger than the file, and the state's shape times its type's item
  size must equal the bytes it carries (or its list must hold one object per element). Types must
  be plain ones that match numpy's own, and numpy gets its own type object, never the file's: a
  crafted type state can claim sizes or flags numpy would never give it (an object type without
  its object flags reads pointers from the file; an object array whose list is short reads past it).
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import reprlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import numpy as np

from ..errors import DatasetError

#: Opcodes that store the top of the stack in the memo, with the slot as their argument.
_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
#: A reason longer than this (opcode arguments are quoted in pickletools' messages) is cut.
_REASON_LENGTH = 160


class _ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle asks for something other than a numpy array: a tampered file."""


class _Corrupt(pickle.UnpicklingError):
    """The file declares more than it holds, or numbers numpy would never write; the message says which."""


def _refuse_size(what: str, declared: int, held: int) -> NoReturn:
    raise _Corrupt(f"{what} needs {declared:,} bytes; the file holds {held:,}")


def _dims(shape: object) -> tuple[int, ...]:
    """A shape as numpy writes it: whole numbers, none negative."""
    dims = (shape,) if isinstance(shape, int) else shape
    if not isinstance(dims, tuple) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in dims):
        raise _Corrupt(f"an array shape {reprlib.repr(shape)} is not a tuple of sizes")
    return dims


def _own_dtype(dtype: np.dtype) -> np.dtype:
    """numpy's own object for the plain type ``dtype`` claims to be (no fields, no sub-arrays).

    The file's type object is only compared, never used: a crafted state can give it sizes or flags
    numpy would never give that type, and the file can rebuild it again after an array took it.
    """
    if dtype.fields is not None or dtype.subdtype is not None:
        raise _Corrupt(f"an array of the structured type {reprlib.repr(dtype)}")
    own = np.dtype(dtype.str)
    if dtype != own or (dtype.itemsize, dtype.alignment, dtype.flags) != (own.itemsize, own.alignment, own.flags):
        raise _Corrupt(
            f"the array type {dtype} is stored with item size {dtype.itemsize:,}, alignment {dtype.alignment} and flags {dtype.flags}, unlike numpy's own"
        )
    return own


class _CheckedArray(np.ndarray):
    """An array rebuilt from the file: numpy fills it only from a state that holds what it declares.

    The unpickler hands this class where the file names ``numpy.ndarray``; the loaded value is
    turned back into plain arrays (views, no copies) before anyone sees it.
    """

    def __new__(cls, *args: object, **kwargs: object) -> _CheckedArray:
        # numpy's own pickles never call ndarray(...), which would allocate any shape it is given.
        raise _ForbiddenGlobal("refusing to call numpy.ndarray directly")

    def __setstate__(self, state: object, /) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5) or not isinstance(state[-3], np.dtype):
            raise _Corrupt("an array's state is not numpy's (version, shape, type, order, data)")
        dims, dtype, data = _dims(state[-4]), _own_dtype(state[-3]), state[-1]
        count = math.prod(dims)
        if dtype.hasobject:  # numpy rebuilds object arrays from a list, one item per element
            if not isinstance(data, list) or len(data) != count:
                held = f"{len(data)} items" if isinstance(data, list) else f"a {type(data).__name__}"
                raise _Corrupt(f"an object array of shape {dims} needs a list of {count:,} items; the file holds {held}")
        elif not isinstance(data, (bytes, str)):
            raise _Corrupt(f"an array of shape {dims} and type {dtype} holds a {type(data).__name__}, not its bytes")
        elif count * dtype.itemsize != len(data):
            _refuse_size(f"an array of shape {dims} and type {dtype}", count * dtype.itemsize, len(data))
        super().__setstate__((*state[:-3], dtype, *state[-2:]))


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays; any other global is refused."""

    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), encoding="bytes")
        self.file_size = len(data)

    def find_class(self, module: str, name: str) -> Any:  # pickle API: any class or function
        if (module, name) not in self.ALLOWED:
            raise _ForbiddenGlobal(f"refusing to load {module}.{name}")
        if name == "ndarray":
            return _CheckedArray
        found = super().find_class(module, name)
        return self._placeholder(found) if name == "_reconstruct" else found

    def _placeholder(self, reconstruct: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        """numpy's ``_reconstruct``, which allocates the shape it is given, for shapes the file can hold."""

        def checked(subtype: object, shape: object, dtype: object) -> np.ndarray:
            if subtype is not _CheckedArray:
                raise _Corrupt(f"an array placeholder of type {reprlib.repr(subtype)}")
            dims, own = _dims(shape), _own_dtype(np.dtype(dtype))  # type: ignore[call-overload]  # numpy parses what the file gives
            declared = math.prod(dims) * own.itemsize
            if declared > self.file_size:  # numpy writes (0,): the data comes with the state
                _refuse_size(f"an array placeholder of shape {dims} and type {own}", declared, self.file_size)
            return reconstruct(subtype, dims, own)

        return checked


def _check_declared_sizes(data: bytes) -> None:
    """Read the opcodes without building anything: each declared length must fit in what follows.

    pickletools reads from memory, so a length larger than the file is a short read it reports
    (ValueError), never an allocation. Memo slots are numbered in order by every pickler, so a
    slot past the next one is refused before the unpickler sizes its memo table to it.
    """
    stored = 0
    for name, argument, position in _opcodes(data):
        if name in _MEMO_PUTS:
            if argument > stored:
                raise _Corrupt(f"memo slot {argument:,} at byte {position:,} after {stored:,} stored objects")
            stored += 1
        elif name == "MEMOIZE":
            stored += 1
        elif name == "FRAME" and argument > len(data) - position - 9:  # after the opcode and its 8-byte length
            _refuse_size(f"a frame at byte {position:,}", argument, len(data) - position - 9)


def _opcodes(data: bytes) -> Iterator[tuple[str, Any, int]]:
    """Each opcode's name, argument (a memo slot or a frame length is an int) and position (known in memory)."""
    for opcode, argument, position in pickletools.genops(data):
        yield opcode.name, argument, position or 0


def _plain_arrays(value: Any, done: dict[int, Any]) -> Any:
    """``value`` with every rebuilt array as an ordinary ndarray (a view), in lists, dicts, tuples and object arrays."""
    if not isinstance(value, (_CheckedArray, tuple, list, dict)):
        return value
    if id(value) in done:
        return done[id(value)]
    done[id(value)] = value  # what is reached again through its own items stays as it is
    if isinstance(value, _CheckedArray):
        plain = done[id(value)] = value.view(np.ndarray)
        if plain.dtype.hasobject:
            for index, item in np.ndenumerate(plain):
                if (replaced := _plain_arrays(item, done)) is not item:
                    plain[index] = replaced
        return plain
    if isinstance(value, tuple):
        done[id(value)] = rebuilt = tuple(_plain_arrays(item, done) for item in value)
        return rebuilt
    if isinstance(value, list):
        value[:] = [_plain_arrays(item, done) for item in value]
    else:
        for key, item in value.items():
            value[key] = _plain_arrays(item, done)
    return value


def _reason(error: Exception) -> str:
    """An error's message on one short line (pickletools quotes opcode arguments in its messages)."""
    text = " ".join(str(error).split())
    return text if len(text) <= _REASON_LENGTH else text[: _REASON_LENGTH - 3] + "..."


def unpickle_dict(path: Path, what: str) -> dict:
    """The dictionary in an official pickle, keys as ``str``; ``what`` names the dataset in messages."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise DatasetError(f"cannot read {path} ({type(error).__name__}: {error.strerror or error}); check its permissions") from None
    try:
        _check_declared_sizes(data)
        loaded = _plain_arrays(_ArrayOnlyUnpickler(data).load(), {})
        if isinstance(loaded, dict):
            # Official files are Python 2 pickles with bytes keys; accept str keys from re-saved copies too.
            loaded = {key.decode() if isinstance(key, bytes) else key: value for key, value in loaded.items()}
    except _ForbiddenGlobal as error:
        raise DatasetError(f"{path} is not a {what} data file ({error}); it may be tampered with: delete it and download the dataset again") from None
    except (_Corrupt, ValueError) as error:  # pickletools reports a short read or a bad opcode as ValueError
        raise DatasetError(f"{path} is truncated or corrupt ({_reason(error)}); delete it and download the dataset again") from None
    except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, IndexError, KeyError, OverflowError, RecursionError) as error:
        raise DatasetError(f"{path} is truncated or corrupt ({type(error).__name__}); delete it and download the dataset again") from None
    if not isinstance(loaded, dict):
        raise DatasetError(f"{path} does not hold a {what} dictionary; delete it and download the dataset again")
    return loaded
