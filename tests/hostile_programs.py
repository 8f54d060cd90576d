"""A corpus of hostile answers for the code verifier: each one is wrong and tries to be judged right
anyway (forged report lines, harness tampering, objects that equal everything, reading the expected
answers, interfering with the other programs of its batch) or to hurt the host (resource bombs,
escapes). Every one must score 0, and the host and the sandbox must be unharmed. (A forged reply
on the solution's own pipe is only ever an answer, judged like any other: the forgers here send
wrong ones.)

`hostile_corpus(t)` -> [(name, test_cases JSON, answer text)]; `t` holds the host paths the programs
aim at ("escape": a path they try to create, "victim": a file they try to delete, "secret": a file
only root may read).
"""

from __future__ import annotations

import json

ASSERTS = json.dumps({"type": "asserts", "setup": "", "asserts": [
    "assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(-5, 6) == 1"]})
FUNCTIONAL = json.dumps({"type": "functional", "fn_name": "add", "cases": [
    {"input": [1, 2], "output": 3}, {"input": [2, 2], "output": 4}, {"input": [-5, 6], "output": 1}]})
CHECK = json.dumps({"type": "check", "entry_point": "add", "test": (
    "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(2, 2) == 4\n"
    "    assert abs(candidate(0.5, 0.25) - 0.75) < 1e-9\n")})
SET_ASSERTS = json.dumps({"type": "asserts", "setup": "", "asserts": [
    "assert set(add(1, 2)) == set([3])", "assert set(add(2, 2)) == set([4])"]})
STDIO = json.dumps({"type": "stdio", "cases": [{"input": "1 2\n", "output": "3\n"}, {"input": "2 2\n", "output": "4\n"},
                                                {"input": "-5 6\n", "output": "1\n"}]})
# what a forger would print: report lines of the old and new harness, for every index and beyond
FORGED = "".join(f'{{"t": {i}, "ok": true, "why": ""}}\\n' for i in (0, 1, 2, 3, 10, 99)) + '{"done": true}\\n'
WRONG = "def add(a, b):\n    return a - b - 1000\n"  # wrong on every test


def _py(code: str) -> str:
    return f"```python\n{code}```\n"


def _cpp(code: str) -> str:
    return f"```cpp\n{code}```\n"


def hostile_corpus(t: dict) -> list[tuple[str, str, str]]:
    esc, victim, secret = str(t["escape"]), str(t["victim"]), str(t["secret"])
    py = [
        # objects that claim to equal everything
        ("eq_always_true", ASSERTS, "class T:\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n"
                                    "def add(a, b):\n    return T()\n"),
        ("eq_always_true_check", CHECK, "class T:\n    def __eq__(self, o): return True\n    def __sub__(self, o): return 0\n"
                                        "    def __lt__(self, o): return True\ndef add(a, b):\n    return T()\n"),
        ("int_subclass_eq", ASSERTS, "class I(int):\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\n"
                                     "def add(a, b):\n    return I(-7)\n"),
        ("str_subclass_eq", FUNCTIONAL, "class S(str):\n    def __eq__(self, o): return True\n    __hash__ = str.__hash__\n"
                                        "def add(a, b):\n    return S('nope')\n"),
        ("list_subclass_eq", FUNCTIONAL, "class L(list):\n    def __eq__(self, o): return True\n"
                                         "def add(a, b):\n    return L([a, b])\n"),
        ("truthy_object", CHECK, "class T:\n    def __bool__(self): return True\n    def __eq__(self, o): return True\n"
                                 "    def __sub__(self, o): return self\n    def __abs__(self): return 0\n"
                                 "def add(a, b):\n    return T()\n"),
        ("del_raises", ASSERTS, "class D:\n    def __del__(self):\n        raise SystemExit(0)\n"
                                "def add(a, b):\n    return D()\n"),
        ("del_exits_process", ASSERTS, "import os\nclass D:\n    def __del__(self):\n        print(" + repr(FORGED) + ")\n"
                                       "        os._exit(0)\ndef add(a, b):\n    D()\n    return a - b - 1000\n"),
        # forged reporting
        ("forged_stdout_lines", ASSERTS, "import sys\nsys.stdout.write(" + repr(FORGED) + ")\n" + WRONG),
        ("forged_stderr_lines", FUNCTIONAL, "import sys\nsys.stderr.write(" + repr(FORGED) + ")\n" + WRONG),
        ("forged_then_os_exit", ASSERTS, "import os, sys\nprint(" + repr(FORGED) + ")\nsys.stdout.flush()\nos._exit(0)\n"),
        ("forged_nonce_lines", ASSERTS, "import sys\nfor i in range(10):\n    print('deadbeefdeadbeef %d ok' % i)\n" + WRONG),
        ("forged_atexit", FUNCTIONAL, "import atexit, os\natexit.register(lambda: os.write(1, " + repr(FORGED.encode()) + "))\n" + WRONG),
        ("forged_replies_on_every_fd", FUNCTIONAL,
         "import os\nfor fd in range(3, 64):\n    for msg in (b'{\"value\": 7}\\n' * 5, " + repr(FORGED.encode()) + "):\n"
         "        try:\n            os.write(fd, msg)\n        except OSError:\n            pass\n" + WRONG),
        ("forged_have_builtins", SET_ASSERTS,  # claims to define `set`, which the test uses on both sides
         "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'{\"have\": [\"set\", \"abs\", \"add\"]}\\n')\n"
         "    except OSError:\n        pass\ndef set(x):\n    return 1\n" + WRONG),
        ("forged_ref_reply", CHECK, "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'{\"ref\": 0}\\n' * 5)\n"
                                    "    except OSError:\n        pass\n" + WRONG),
        # reaching for the harness
        ("patch_main_module", FUNCTIONAL,
         "import sys\nm = sys.modules['__main__']\nfor name in ('encode', 'dumps', 'decode', 'plain_equal', 'driver', 'server'):\n"
         "    if hasattr(m, name):\n        setattr(m, name, lambda *a, **k: True)\n" + WRONG),
        ("frame_walk_patch", ASSERTS,
         "import sys\ndef add(a, b):\n    f = sys._getframe()\n    while f:\n        for k in list(f.f_globals):\n"
         "            if k in ('encode', 'dumps', 'plain_equal'):\n                f.f_globals[k] = lambda *x, **y: '{\"value\": \"pass\"}'\n"
         "        f = f.f_back\n    return a - b - 1000\n"),
        ("patch_builtins", CHECK, "import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.isinstance = lambda *a: True\n"
                                  "builtins.AssertionError = type('Nope', (Exception,), {})\n" + WRONG),
        ("patch_json_and_exit", ASSERTS, "import json, sys, os\njson.loads = lambda *a, **k: {'t': 0, 'ok': True}\n"
                                         "json.dumps = lambda *a, **k: '{\"ok\": true}'\nsys.exit = lambda *a: None\n"
                                         "os._exit = lambda *a: None\n" + WRONG),
        ("shadow_check_function", CHECK, "def check(candidate):\n    return True\n" + WRONG),
        ("shadow_builtins_used_by_test", CHECK, "def abs(x):\n    return 0\ndef add(a, b):\n    return a - b - 1000\n"),
        ("system_exit_in_call", ASSERTS, "def add(a, b):\n    raise SystemExit(0)\n"),
        ("keyboard_interrupt", FUNCTIONAL, "def add(a, b):\n    raise KeyboardInterrupt\n"),
        ("not_plain_generator", FUNCTIONAL, "def add(a, b):\n    return (x for x in [a + b])\n"),
        ("huge_answer", FUNCTIONAL, "def add(a, b):\n    return 'x' * (40 << 20)\n"),
        ("huge_int_answer", ASSERTS, "def add(a, b):\n    return 10 ** 200000\n"),
        ("deep_answer", FUNCTIONAL, "def add(a, b):\n    r = []\n    for _ in range(100000):\n        r = [r]\n    return r\n"),
        # reading the expected answers, or the other programs of the batch
        ("read_expected_answers", FUNCTIONAL,
         "import glob, json, re\nfound = []\nfor pat in ('/batch/*', '/tmp/*/*', '/tmp/run/*', '/tmp/run/*/*', '/var/lib/am-distill-sandbox/*/*',\n"
         "            '/var/lib/am-distill-sandbox/*/*/*', '/tmp/am-sbx-batch-*/*'):\n    for p in glob.glob(pat):\n"
         "        try:\n            found.append(open(p).read())\n        except Exception:\n            pass\n"
         "text = ''.join(found)\nANS = [int(x) for x in re.findall(r'\"output\": (-?\\d+)', text)]\n"
         "def add(a, b):\n    return ANS.pop(0) if ANS else a - b - 1000\n"),
        ("overwrite_other_programs", ASSERTS,
         "import glob\nfor p in glob.glob('/tmp/run/*/*.py') + glob.glob('/var/lib/am-distill-sandbox/*/*/*.py'):\n"
         "    try:\n        open(p, 'w').write('def add(a, b):\\n    return 0\\n')\n    except Exception:\n        pass\n" + WRONG),
        ("kill_everything", ASSERTS, "import os, signal\nfor pid in os.listdir('/proc'):\n    if pid.isdigit() and int(pid) != os.getpid():\n"
                                     "        try:\n            os.kill(int(pid), signal.SIGKILL)\n        except OSError:\n            pass\n"
                                     "os.kill(-1, signal.SIGKILL)\n"),
        ("ptrace_driver", FUNCTIONAL,
         "import ctypes, os\nlibc = ctypes.CDLL(None)\nfor pid in os.listdir('/proc'):\n    if pid.isdigit():\n"
         "        libc.ptrace(16, int(pid), 0, 0)\n        try:\n            open('/proc/%s/mem' % pid, 'wb')\n"
         "            open('/proc/%s/fd/1' % pid, 'w').write(" + repr(FORGED) + ")\n        except OSError:\n            pass\n" + WRONG),
        ("daemon_left_behind", ASSERTS, "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                                        "        time.sleep(30)\n        os._exit(0)\n    os._exit(0)\n" + WRONG),
        # resource bombs and escapes
        ("fork_bomb", ASSERTS, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"),
        ("memory_bomb", FUNCTIONAL, "def add(a, b):\n    x = []\n    while True:\n        x.append(b'x' * (50 << 20))\n"),
        ("infinite_loop", CHECK, "def add(a, b):\n    while True:\n        pass\n"),
        ("infinite_output", STDIO, "import sys\nwhile True:\n    sys.stdout.write('3\\n' * 10000)\n"),
        ("recursion_segfault", FUNCTIONAL, "import sys\nsys.setrecursionlimit(10 ** 9)\ndef add(a, b):\n    return add(a, b) + 1\n"),
        ("ctypes_segfault", ASSERTS, "import ctypes\nctypes.string_at(0)\n"),
        ("escape_and_delete", STDIO, f"import os, shutil\nfor p in ({esc!r},):\n    try:\n        open(p, 'w').write('x')\n"
                                     f"    except OSError:\n        pass\ntry:\n    os.remove({victim!r})\nexcept OSError:\n    pass\n"
                                     f"try:\n    print(open({secret!r}).read())\nexcept OSError:\n    print(0)\n"),
        ("stdio_reads_batch_file", STDIO, "import glob\nfor p in glob.glob('/batch/*') + glob.glob('/tmp/am-sbx-batch-*/*'):\n"
                                          "    try:\n        print(open(p).read()[:100])\n    except OSError:\n        pass\nprint(-1)\n"),
    ]
    cpp = [
        ("cpp_fork_bomb", STDIO, _cpp("#include <unistd.h>\nint main(){ while(1) fork(); }\n")),
        ("cpp_infinite_loop", STDIO, _cpp("int main(){ volatile long x = 0; while(1) x++; }\n")),
        ("cpp_compile_bomb", STDIO, _cpp("template<int N> struct F { enum { v = F<N-1>::v + F<N-2>::v }; };\n"
                                         "template<> struct F<0> { enum { v = 0 }; };\ntemplate<> struct F<1> { enum { v = 1 }; };\n"
                                         "#include <cstdio>\nint main(){ printf(\"%d\\n\", F<100000>::v); }\n")),
        ("cpp_include_secret", STDIO, _cpp(f"#include \"{secret}\"\nint main(){{}}\n")),
        ("cpp_memory_bomb", STDIO, _cpp("#include <vector>\n#include <cstdio>\nint main(){ std::vector<char*> v; "
                                        "while(1){ char* p = new char[1<<26]; for(int i=0;i<(1<<26);i+=4096) p[i]=1; v.push_back(p);} }\n")),
    ]
    return [(n, tc, _py(code)) for n, tc, code in py] + cpp
