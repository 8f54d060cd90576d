"""The two sides of a Python code test, run inside the sandbox (standard library only).

    python3 -I -S code_proto.py run SOLUTION.py              stdin/stdout test: prelude + solution as __main__
    python3 -I -S code_proto.py server SOLUTION.py RFD WFD   untrusted: answers calls with plain data
    python3 -I -S code_proto.py driver RFD WFD               trusted: runs the tests, spec on stdin
(-S: no site import, which costs more than the rest of the start-up; `exit` comes from the prelude.)

The verdict must not depend on anything the solution controls except the values it returns. So the
solution runs alone in the *server* process (its own uid); the *driver* (another uid, which the
server cannot signal, trace or read) runs the dataset's test code with every solution name replaced
by a proxy that sends the call's arguments over a pipe and gets back plain data (None, bool, int,
float, str, list, tuple, set, dict, bytes, complex, as exactly those types; a handle for an object of
the solution's own classes). Comparisons happen in the driver on those values, so an `__eq__` that
always says True never reaches it. The driver writes one JSON line per test to its own stdout, which
only the runner reads.
"""

import builtins
import marshal
import math
import os
import sys

# The untrusted side imports nothing beyond these built-in modules: json and ast (re, enum...) would
# double its start-up. The driver's imports (json, select, ast, the prelude) are loaded once by
# `warm` in the runner, which forks the drivers.

# LeetCode/LiveCodeBench graders run solutions after these imports (LiveCodeBench testing_util's
# import string); `from builtins import *` undoes the shadowing of pow, open... by the star imports.
_STAR = ("string re datetime collections heapq bisect copy math random statistics itertools functools "
         "operator io sys json builtins typing").split()
PRELUDE_MODULES = "".join(f"import {m}\n" for m in _STAR if m not in ("builtins", "typing"))
PRELUDE = "".join(f"from {m} import *\n" for m in _STAR) + PRELUDE_MODULES + "sys.setrecursionlimit(50000)\n"
MAX_REPLY = 16 << 20  # bytes of one encoded return value


class NotPlain(TypeError):
    pass


_PLAIN = (bool, int, float, str, bytes, complex, list, tuple, set, frozenset, dict)
_TYPES = {c.__name__: c for c in _PLAIN}


def encode(v, depth=0):
    """A value as JSON-ready data. Subclasses of plain types (Counter, a namedtuple, an int with its
    own __eq__) go as their plain value, so their methods never run on the trusted side; any other
    object fails."""
    if depth > 100:
        raise NotPlain("nested too deeply")
    t = type(v)
    if v is None or t is bool or t is str or t is int:
        return v
    if t is float:
        return v if math.isfinite(v) else {"$x": repr(v)}
    if t is list:
        return [encode(x, depth + 1) for x in v]
    if t in (tuple, set, frozenset):
        tag = {tuple: "$t", set: "$s", frozenset: "$f"}[t]
        return {tag: [encode(x, depth + 1) for x in v]}
    if t is dict:
        return {"$d": [[encode(k, depth + 1), encode(x, depth + 1)] for k, x in v.items()]}
    if t is bytes:
        return {"$b": v.hex()}
    if t is complex:
        return {"$c": [v.real, v.imag]}
    if t is Remote:  # the driver passes a solution object back to the solution
        return {"$r": v._ref}
    if t is type and v in _PLAIN:
        return {"$type": v.__name__}
    for base in _PLAIN[1:]:
        if isinstance(v, base):
            return encode(base(v.items()) if base is dict else base(v), depth + 1)
    raise NotPlain(f"returned a {t.__name__}, not plain data")


def decode(x, objs=None):
    """The inverse of encode, strict: what the server sends is untrusted. Object handles and type
    names are accepted only by the server (`objs`), from the driver."""
    t = type(x)
    if x is None or t in (bool, int, float, str):
        return x
    if t is list:
        return [decode(i, objs) for i in x]
    if t is dict and len(x) == 1:
        (tag, v), = x.items()
        if objs is not None and tag == "$r":
            return objs[v]
        if objs is not None and tag == "$type":
            return _TYPES[v]
        if tag == "$x" and v in ("nan", "inf", "-inf"):
            return float(v)
        if tag == "$b" and type(v) is str:
            return bytes.fromhex(v)
        if tag == "$c" and type(v) is list and len(v) == 2 and all(type(p) in (int, float) for p in v):
            return complex(v[0], v[1])
        if tag in ("$t", "$s", "$f", "$d") and type(v) is list:
            items = [decode(i, objs) for i in v]
            if tag == "$d":
                if not all(type(p) is list and len(p) == 2 for p in items):
                    raise ValueError("malformed dict")
                return {k: val for k, val in items}
            return {"$t": tuple, "$s": set, "$f": frozenset}[tag](items)
    raise ValueError("not plain data")


def _err(e):
    return f"{type(e).__name__}: {e}"[:300]


# ------------------------------------------------------------------ untrusted side


def free_names(*sources):
    """Names some code reads but never binds and builtins lack: when there are none, the prelude
    (a few dozen ms of imports per process) is not needed."""
    import ast

    loaded, bound = set(), set(dir(builtins))
    for src in sources:
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Name):
                (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(node.name)
            elif isinstance(node, ast.alias):
                if node.name == "*":
                    return {"*"}  # unknown names bound: take the prelude to be safe
                bound.add((node.asname or node.name).split(".")[0])
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                bound.add(node.name)
    return loaded - bound


def needs_prelude(src):
    """Whether the solution reads a name it never binds: decided by the caller (the host), so the
    sandboxed process skips the prelude's imports when it does not."""
    try:
        return bool(free_names(src))
    except (SyntaxError, ValueError):
        return False  # compile() in the sandbox reports it


_ESC = {i: f"\\u{i:04x}" for i in range(32)} | {34: '\\"', 92: "\\\\"}


def dumps(v):
    """JSON for what encode() returns, without importing json."""
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if type(v) is int:
        return str(v)
    if type(v) is float:
        return repr(v)
    if type(v) is str:
        return '"' + v.translate(_ESC) + '"'
    if type(v) is list:
        return "[" + ",".join(map(dumps, v)) + "]"
    return "{" + ",".join(dumps(str(k)) + ":" + dumps(x) for k, x in v.items()) + "}"


def _load(path, name, prelude_on):
    g = {"__name__": name, "__builtins__": builtins}
    with open(path) as f:
        src = f.read()
    if prelude_on:
        exec(compile(PRELUDE, "prelude.py", "exec"), g)
    prelude = dict(g)
    exec(compile(src, "solution.py", "exec"), g)
    return g, prelude


def _requests(fd):
    """The driver's requests: 4-byte length + marshal (trusted data, and marshal needs no import)."""
    buf = b""
    while True:
        while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "big"):
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return
            buf += chunk
        n = int.from_bytes(buf[:4], "big")
        yield marshal.loads(buf[4:4 + n])
        buf = buf[4 + n:]


def server(path, rfd, wfd, prelude_on):
    out = os.fdopen(wfd, "w")

    def send(msg):
        out.write(dumps(msg) + "\n")
        out.flush()

    inp = _requests(rfd)
    want = next(inp, {}).get("want", [])
    try:
        g, prelude = _load(path, "__solution__", prelude_on)  # not __main__: its main block does not run
    except BaseException as e:  # noqa: BLE001 - reported as the real error of every test
        send({"setup_error": _err(e)})
        return
    # only what the solution itself defines (a prelude name it did not rebind is the driver's own)
    own = {n for n, v in g.items() if v is not prelude.get(n)}
    send({"have": [n for n in want if n in own and callable(g[n])]})
    objs = {}

    def reply(value):
        if type(value).__module__ == "__solution__" and not isinstance(value, _PLAIN):
            # one of its own objects (not a subclass of a plain type): the driver gets a handle
            objs[len(objs)] = value
            return {"ref": len(objs) - 1}
        return {"value": encode(value)}

    for req in inp:
        try:
            if "fn" in req:  # functional test: a function, else Solution().<fn> (LeetCode)
                fn = g[req["fn"]] if req["fn"] in own else None  # never a prelude function of that name
                if not callable(fn) or isinstance(fn, type):
                    fn = getattr(g["Solution"](), req["fn"]) if "Solution" in own else None
                if fn is None:
                    raise NameError(f"no function or Solution method named {req['fn']!r}")
            elif "obj" in req:
                if req.get("set"):
                    setattr(objs[req["obj"]], req["attr"], decode(req["args"][0], objs))
                    send({"value": None})
                    continue
                fn = getattr(objs[req["obj"]], req["attr"])
                if req.get("get"):
                    send({"callable": True} if callable(fn) and not isinstance(fn, type) else reply(fn))
                    continue
            else:
                fn = g[req["name"]]
            send(reply(fn(*[decode(a, objs) for a in req["args"]],
                          **{k: decode(v, objs) for k, v in req["kwargs"].items()})))
        except NotPlain as e:
            send({"error": f"{e}", "kind": "notplain"})
        except BaseException as e:  # noqa: BLE001 - the solution's error, sent as the test's reason
            send({"error": _err(e)})


# ------------------------------------------------------------------ trusted side


class SolutionError(Exception):
    """The solution raised, returned something that is not plain data, or its process ended."""


class SolutionGone(SolutionError):
    """No answer (timeout or the process ended): the tests after this one cannot run."""


class Channel:
    def __init__(self, rfd, wfd, call_timeout):
        self.r, self.w, self.timeout, self.buf = rfd, wfd, call_timeout, b""

    def send(self, msg):
        data = marshal.dumps(msg)
        try:
            os.write(self.w, len(data).to_bytes(4, "big") + data)
        except OSError:
            raise SolutionGone("the solution process ended") from None

    def reply(self, timeout):
        import json
        import select
        import time

        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise SolutionGone(f"timeout: no answer within {timeout:g}s")
            chunk = os.read(self.r, 1 << 16)
            if not chunk:
                raise SolutionGone("the solution process ended")
            self.buf += chunk
            if len(self.buf) > MAX_REPLY:
                raise SolutionGone("the answer is larger than 16 MB")
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            reply = json.loads(line)
        except (ValueError, RecursionError):
            reply = None
        if type(reply) is not dict:
            raise SolutionError("malformed answer")
        return reply

    def ask(self, msg):
        self.send(msg)
        reply = self.reply(self.timeout)
        if "error" in reply:
            verb = "" if reply.get("kind") == "notplain" else "raised "
            raise SolutionError(f"the solution {verb}{str(reply['error'])[:300]}")
        if "ref" in reply and type(reply["ref"]) is int:
            return Remote(self, reply["ref"])
        if "callable" in reply:
            return _CALLABLE
        if "value" not in reply:
            raise SolutionError("malformed answer")
        try:
            return decode(reply["value"])
        except (ValueError, TypeError, RecursionError) as e:
            raise SolutionError(f"answer is not plain data: {e}") from None


_CALLABLE = object()


class Proxy:
    """Stands in for a solution function or class in the trusted test code."""

    def __init__(self, chan, name):
        self._chan, self._name = chan, name

    def __call__(self, *args, **kwargs):
        return self._chan.ask({"name": self._name, "args": [_arg(a) for a in args],
                               "kwargs": {k: _arg(v) for k, v in kwargs.items()}})


class Remote:
    """An instance of a solution class living in the server; attributes are fetched as plain data."""

    def __init__(self, chan, ref):
        self._chan, self._ref = chan, ref

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        got = self._chan.ask({"obj": self._ref, "attr": attr, "get": True, "args": [], "kwargs": {}})
        if got is not _CALLABLE:
            return got
        chan, ref = self._chan, self._ref
        return lambda *a, **k: chan.ask({"obj": ref, "attr": attr, "args": [_arg(x) for x in a],
                                         "kwargs": {n: _arg(v) for n, v in k.items()}})

    def __setattr__(self, attr, value):
        if attr.startswith("_"):
            object.__setattr__(self, attr, value)
        else:
            self._chan.ask({"obj": self._ref, "attr": attr, "set": True, "args": [_arg(value)], "kwargs": {}})

    def __repr__(self):
        return "<an object of the solution>"

    def __bool__(self):  # an object is not an answer: `assert candidate(x)` must not pass on it
        raise TypeError("a solution object has no truth value")


def _arg(a):
    try:
        return encode(a)
    except NotPlain as e:
        raise TypeError(f"the test passes a {type(a).__name__}, which cannot be sent to the solution") from e


def _names(code):
    """Every global name a piece of code (and its nested functions) may look up."""
    out, todo = set(), [code]
    while todo:
        c = todo.pop()
        out.update(c.co_names)
        todo += [k for k in c.co_consts if hasattr(k, "co_names")]
    return out


def plain_equal(got, want, tol=1e-6):
    """Functional-test equality on plain values: tuples count as lists (expected values come from
    JSON), floats within a tolerance, bools are not numbers."""
    if isinstance(got, tuple):
        got = list(got)
    if type(want) is float or (type(got) is float and type(want) is int):
        return type(got) in (int, float) and (got == want or math.isclose(got, want, rel_tol=tol, abs_tol=tol))
    if type(want) is list:
        return type(got) is list and len(got) == len(want) and all(map(plain_equal, got, want))
    if type(want) is dict:
        return type(got) is dict and got.keys() == want.keys() and all(plain_equal(got[k], want[k]) for k in want)
    return type(got) is type(want) and got == want


def _context(chan, spec, units):
    """The trusted namespace: the prelude's modules, proxies for the names the solution itself
    defines, then the dataset's own code (HumanEval prompt helpers, MBPP setup), which wins."""
    ns = {"__name__": "__main__", "__builtins__": builtins}
    trusted_src = [spec.get("prompt") or "", spec.get("setup") or ""]
    trusted = [compile(c, "setup.py", "exec") for c in trusted_src]
    entry = spec.get("entry_point")
    want = (set().union(*map(_names, units + trusted)) | ({entry} if entry else set())) - set(dir(builtins))
    chan.send({"want": sorted(want)})
    first = chan.reply(float(spec["setup_timeout_s"]))
    if "setup_error" in first:
        raise SolutionGone(f"the solution did not load: {str(first['setup_error'])[:300]}")
    # only names asked for: a forged answer must not turn a builtin the test uses into a proxy
    have = [n for n in first.get("have", []) if type(n) is str and n in want]
    if units and free_names(*trusted_src, *spec["tests"]) - set(have):  # MBPP asserts may use the solution's `math`
        exec(compile(PRELUDE_MODULES, "prelude.py", "exec"), ns)  # modules only: a star import could
        # stand in for a function the solution lacks (operator.add for a missing `add`)
    ns.update({n: Proxy(chan, n) for n in have})
    for code in trusted:
        exec(code, ns)
    ns.pop(entry, None)
    if entry in have:
        ns[entry] = Proxy(chan, entry)
    return ns


def _functional(chan, spec, case):
    args = case["input"]
    call = {"fn": spec["fn_name"], "args": [], "kwargs": {}}
    if type(args) is dict:
        call["kwargs"] = {k: _arg(v) for k, v in args.items()}
    else:
        call["args"] = [_arg(a) for a in (args if type(args) is list else [args])]
    got, want = chan.ask(call), case.get("output")
    if plain_equal(got, want) or (spec.get("output_wrapped") and type(want) is list and len(want) == 1
                                  and plain_equal(got, want[0])):
        return ""
    return f"wrong answer: got {str(got)[:100]}, expected {str(want)[:100]}"


def warm():
    """Run once in the sandbox runner before it forks drivers: the prelude's imports are then shared."""
    import ast  # noqa: F401
    import json  # noqa: F401
    import select  # noqa: F401
    import time  # noqa: F401

    exec(compile(PRELUDE, "prelude.py", "exec"), {"__builtins__": builtins})


def driver(rfd, wfd):
    import json

    sys.set_int_max_str_digits(100_000)  # big answers are fine; a 16 MB integer (quadratic to parse) is not
    spec = json.load(sys.stdin)
    report = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the test code's own prints must not reach the report channel
    chan = Channel(rfd, wfd, float(spec["call_timeout_s"]))
    kind, tests, entry = spec["kind"], spec["tests"], spec.get("entry_point")
    units = [] if kind == "functional" else [compile(t, f"test_{i}.py", "exec") for i, t in enumerate(tests)]
    gone = None
    try:
        ns = _context(chan, spec, units)
    except SolutionError as e:
        gone = str(e)
    for i in range(len(tests)):
        why = gone
        if gone is None:
            try:
                if kind == "functional":
                    why = _functional(chan, spec, tests[i])
                else:
                    exec(units[i], ns)
                    if kind == "check" or (kind == "test_code" and "def check(" in tests[i]
                                           and "\ncheck(" not in "\n" + tests[i]):
                        if entry not in ns:
                            raise NameError(f"the solution defines no {entry!r}")
                        ns["check"](ns[entry])
                    why = ""
            except SolutionGone as e:
                why, gone = str(e), f"not run: {e}"
            except SolutionError as e:
                why = str(e)
            except AssertionError as e:
                why = "assertion failed" + (f": {e}" if str(e) else "")
            except BaseException as e:  # noqa: BLE001 - a failing test, with its real error
                why = _err(e)
        report.write(json.dumps({"t": i, "ok": not why, "why": why[:300]}) + "\n")
        report.flush()
    report.write(json.dumps({"done": True}) + "\n")
    report.flush()


if __name__ == "__main__":
    sys.set_int_max_str_digits(0)
    mode = sys.argv[1]
    if mode == "run":
        _load(sys.argv[2], "__main__", sys.argv[3] == "1")  # stdin/stdout test: the main block runs
    elif mode == "server":
        server(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1")
    elif mode == "driver":
        driver(int(sys.argv[2]), int(sys.argv[3]))
