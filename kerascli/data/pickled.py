"""A reader of the small part of Python's pickle format that keras.datasets' files are written in.

CIFAR's batches and the ragged sequences inside imdb.npz and reuters.npz are
pickle streams: dicts, lists, tuples, numbers, strings and numpy arrays. This
reads such a stream opcode by opcode and builds those values itself; it never
unpickles. No class is looked up and nothing is called: the only names a stream
may mention are the four numpy uses to describe an array (its
``_reconstruct``, ``ndarray``, ``dtype``) and ``_codecs.encode``, the way
Python 3 writes bytes in protocol 2, and each is recognised by name and its
effect done here. Anything else (another name, an opcode outside this subset, a
truncated or inconsistent stream) is a DataError naming the byte offset.

Protocols 2 to 4 are read (what Python 2's cPickle and numpy's savez wrote them
in). Text written by Python 2 (``str``, opcodes ``T``/``U``) comes back as bytes,
as Keras reads these files with ``encoding="bytes"``.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from kerascli.errors import DataError

_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
_NDARRAY, _DTYPE, _ENCODE = ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")
# dtypes an array in these files may have (numbers and Python objects): never a structured or void one
_DTYPE_KINDS = "biufO"


class _Name:
    """A name the stream mentions (GLOBAL), known to be one of the allowed ones."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name


class _Pending:
    """An array or dtype between its creation (REDUCE) and its state (BUILD); ``value`` once built."""

    __slots__ = ("kind", "descr", "value")

    def __init__(self, kind: str, descr: str = ""):
        self.kind, self.descr, self.value = kind, descr, None


class _Mark:
    __slots__ = ()


_MARK = _Mark()


def read_pickle(data: bytes, where: str):
    """The value the pickle stream ``data`` holds (``where`` names it in errors)."""
    return _Reader(data, where).run()


class _Reader:
    def __init__(self, data: bytes, where: str):
        self.data, self.where, self.pos = memoryview(data), where, 0
        self.stack: list = []
        self.memo: dict[int, object] = {}

    def fail(self, message: str, at: int | None = None):
        offset = self.pos if at is None else at
        raise DataError(f"{self.where}: {message} (at byte {offset}); the file is damaged or not one of "
                        "keras.datasets' files")

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            self.fail(f"the stream ends inside a value of {n:,} bytes")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def line(self) -> str:
        end = bytes(self.data[self.pos:self.pos + 4096]).find(b"\n")
        if end < 0:
            self.fail("a text argument has no end of line")
        text = bytes(self.take(end + 1)[:-1])
        try:
            return text.decode("ascii")
        except UnicodeDecodeError:
            self.fail("a text argument is not ASCII")

    def pop_mark(self) -> list:
        """The items above the topmost mark, the mark removed."""
        stack = self.stack
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is _MARK:
                items = stack[i + 1:]
                del stack[i:]
                return items
        self.fail("an opcode needs a mark that is not there")

    def pop(self):
        if not self.stack or self.stack[-1] is _MARK:
            self.fail("an opcode needs a value the stack does not have")
        return self.stack.pop()

    def top(self):
        if not self.stack or self.stack[-1] is _MARK:
            self.fail("an opcode needs a value the stack does not have")
        return self.stack[-1]

    def put(self, index: int):
        self.memo[index] = self.top()

    def get(self, index: int):
        if index not in self.memo:
            self.fail(f"a reference to memo entry {index}, which was never stored")
        value = self.memo[index]
        self.stack.append(value.value if isinstance(value, _Pending) and value.value is not None else value)

    def run(self):
        ops, data, stack = _OPS, self.data, self.stack
        size = len(data)
        int4 = struct.Struct("<i").unpack_from
        while self.pos < size:
            at = self.pos
            code = data[at]
            # the opcodes of long lists of numbers (imdb: millions of them) are read here, not dispatched
            if code == 0x4B and at + 1 < size:  # BININT1
                stack.append(data[at + 1])
                self.pos = at + 2
                continue
            if code == 0x4D and at + 2 < size:  # BININT2
                stack.append(data[at + 1] | data[at + 2] << 8)
                self.pos = at + 3
                continue
            if code == 0x4A and at + 4 < size:  # BININT
                stack.append(int4(data, at + 1)[0])
                self.pos = at + 5
                continue
            self.pos += 1
            op = ops.get(code)
            if op is None:
                self.fail(f"opcode {bytes([code])!r} is outside what these files use", at)
            if op(self) is _STOP:
                if len(self.stack) != 1:
                    self.fail("the stream stops with more than one value", at)
                value = self.stack.pop()
                if isinstance(value, _Pending):
                    self.fail("the stream stops before its array is complete", at)
                return value
        self.fail("the stream ends before its STOP opcode")

    # ---- values

    def extend(self, items: list):
        """APPEND (one item) and APPENDS (the items above the mark) to the list below them."""
        target = self.top()
        if not isinstance(target, list):
            self.fail("APPEND to something that is not a list")
        target.extend(items)

    def setitems(self, items: list):
        if len(items) % 2:
            self.fail("SETITEMS with a key and no value")
        target = self.top()
        if not isinstance(target, dict):
            self.fail("SETITEM on something that is not a dict")
        for i in range(0, len(items), 2):
            key = items[i]
            if not isinstance(key, (str, bytes, int, float, bool, type(None))):
                self.fail("a dict key that is not a string or a number")
            target[key] = items[i + 1]

    def name(self, module: str, name: str):
        if (module, name) in _RECONSTRUCT or (module, name) in (_NDARRAY, _DTYPE, _ENCODE):
            self.stack.append(_Name(module, name))
        else:
            self.fail(f"the stream names {module}.{name}, which these files never need; refused")

    def reduce(self):
        args, func = self.pop(), self.pop()
        if not isinstance(func, _Name) or not isinstance(args, tuple):
            self.fail("REDUCE of something other than an allowed name and its arguments")
        key = (func.module, func.name)
        if key in _RECONSTRUCT:
            if not (len(args) == 3 and isinstance(args[0], _Name) and (args[0].module, args[0].name) == _NDARRAY):
                self.fail("an array is made of something other than numpy.ndarray")
            self.stack.append(_Pending("array"))
        elif key == _DTYPE:
            if not (args and isinstance(args[0], (str, bytes))):
                self.fail("a dtype without its type code")
            descr = args[0].decode("latin-1") if isinstance(args[0], bytes) else args[0]
            self.stack.append(_Pending("dtype", descr))
        elif key == _ENCODE:
            if not (len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1")):
                self.fail("_codecs.encode with arguments other than (text, 'latin1')")
            self.stack.append(args[0].encode("latin-1"))
        else:
            self.fail(f"{func.module}.{func.name} cannot be called")

    def build(self):
        state = self.pop()
        pending = self.top()
        if not isinstance(pending, _Pending) or pending.value is not None:
            self.fail("BUILD of something other than a new array or dtype")
        if pending.kind == "dtype":
            pending.value = self.dtype_of(pending.descr, state)
        else:
            pending.value = self.array_of(state)
        self.stack[-1] = pending.value

    def dtype_of(self, descr: str, state) -> np.dtype:
        if not (isinstance(state, tuple) and len(state) >= 5):
            self.fail("a dtype's state is not numpy's")
        order, names, fields = state[1], state[3], state[4]
        order = order.decode("latin-1") if isinstance(order, bytes) else order
        try:
            dtype = np.dtype(descr)
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind not in _DTYPE_KINDS or names is not None or fields is not None:
            self.fail(f"an array of dtype {descr!r}; only numbers and Python objects are read")
        if order in ("<", ">"):
            dtype = dtype.newbyteorder(order)
        elif order not in ("|", "="):
            self.fail(f"a dtype of byte order {order!r}")
        return dtype

    def array_of(self, state) -> np.ndarray:
        if not (isinstance(state, tuple) and len(state) == 5):
            self.fail("an array's state is not numpy's (version, shape, dtype, order, data)")
        _, shape, dtype, fortran, values = state
        if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)):
            self.fail("an array's shape is not a tuple of sizes")
        if not isinstance(dtype, np.dtype):
            self.fail("an array's dtype is not a numpy dtype")
        count = math.prod(shape)
        order = "F" if fortran else "C"
        if dtype.hasobject:
            if not isinstance(values, list) or len(values) != count:
                self.fail(f"an object array of shape {shape} without its {count:,} values")
            array = np.empty(count, dtype=object)
            for i, v in enumerate(values):
                array[i] = v
            return array.reshape(shape, order=order)
        if not isinstance(values, bytes) or len(values) != count * dtype.itemsize:
            self.fail(f"an array of shape {shape} and dtype {dtype} does not hold {count * dtype.itemsize:,} bytes")
        return np.frombuffer(values, dtype=dtype).reshape(shape, order=order).copy(order="A")


_STOP = object()


def _tuple(n):
    def op(r):
        if len(r.stack) < n or any(v is _MARK for v in r.stack[len(r.stack) - n:]):
            r.fail("a tuple needs values the stack does not have")
        items = tuple(r.stack[len(r.stack) - n:]) if n else ()
        del r.stack[len(r.stack) - n:]
        r.stack.append(items)
    return op


def _long(r, size_format: str):
    n = r.unpack(size_format)
    r.stack.append(int.from_bytes(r.take(n), "little", signed=True))


def _bytes(size_format: str):
    def op(r):
        r.stack.append(bytes(r.take(r.unpack(size_format))))
    return op


def _text(size_format: str):
    def op(r):
        raw = r.take(r.unpack(size_format))
        try:
            r.stack.append(str(raw, "utf-8"))
        except UnicodeDecodeError:
            r.fail("a string that is not UTF-8")
    return op


def _global(r):
    module = r.line()
    r.name(module, r.line())


def _stack_global(r):
    name, module = r.pop(), r.pop()
    if not (isinstance(module, str) and isinstance(name, str)):
        r.fail("STACK_GLOBAL of something other than two strings")
    r.name(module, name)


def _list_from_mark(r):
    r.stack.append(r.pop_mark())


def _dict_from_mark(r):
    items = r.pop_mark()
    r.stack.append({})
    r.setitems(items)


def _setitem(r):
    value, key = r.pop(), r.pop()
    r.setitems([key, value])


_OPS = {
    0x80: lambda r: r.take(1),  # PROTO: the version is not needed to read the subset
    0x95: lambda r: r.take(8),  # FRAME: a hint for buffering
    ord("."): lambda r: _STOP,
    ord("("): lambda r: r.stack.append(_MARK),
    ord("0"): lambda r: r.pop(),
    ord("1"): lambda r: r.pop_mark(),
    ord("2"): lambda r: r.stack.append(r.top()),
    ord("}"): lambda r: r.stack.append({}),
    ord("d"): _dict_from_mark,
    ord("]"): lambda r: r.stack.append([]),
    ord("l"): _list_from_mark,
    ord(")"): _tuple(0),
    ord("t"): lambda r: r.stack.append(tuple(r.pop_mark())),
    0x85: _tuple(1),
    0x86: _tuple(2),
    0x87: _tuple(3),
    ord("a"): lambda r: r.extend([r.pop()]),
    ord("e"): lambda r: r.extend(r.pop_mark()),
    ord("s"): _setitem,
    ord("u"): lambda r: r.setitems(r.pop_mark()),
    ord("J"): lambda r: r.stack.append(r.unpack("<i")),
    ord("K"): lambda r: r.stack.append(r.unpack("<B")),
    ord("M"): lambda r: r.stack.append(r.unpack("<H")),
    0x8A: lambda r: _long(r, "<B"),
    0x8B: lambda r: _long(r, "<i"),
    ord("G"): lambda r: r.stack.append(r.unpack(">d")),
    ord("N"): lambda r: r.stack.append(None),
    0x88: lambda r: r.stack.append(True),
    0x89: lambda r: r.stack.append(False),
    ord("U"): _bytes("<B"),
    ord("T"): _bytes("<i"),  # a negative length is refused by take()
    ord("C"): _bytes("<B"),
    ord("B"): _bytes("<I"),
    0x8E: _bytes("<Q"),
    0x8C: _text("<B"),
    ord("X"): _text("<I"),
    0x8D: _text("<Q"),
    ord("q"): lambda r: r.put(r.unpack("<B")),
    ord("r"): lambda r: r.put(r.unpack("<I")),
    0x94: lambda r: r.put(len(r.memo)),
    ord("h"): lambda r: r.get(r.unpack("<B")),
    ord("j"): lambda r: r.get(r.unpack("<I")),
    ord("c"): _global,
    0x93: _stack_global,
    ord("R"): lambda r: r.reduce(),
    ord("b"): lambda r: r.build(),
}
