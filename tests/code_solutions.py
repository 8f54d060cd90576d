"""Known-correct solutions and known-wrong variants for the code verifier (tests and benchmarks).

- HumanEval canonical solutions and MBPP reference code (../shared/data), with wrong variants made by
  wrapping the function under test: `return None`, the answer perturbed on every input (not b,
  n + 1, s + "x", list + [None]...), and the wrong answer wrapped in an object whose `__eq__` is
  always True or in an int/str/list subclass that equals everything.
- stdin/stdout problems with solutions written here in Python and C++, and their mutants
  (off by one, wrong operator).
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

_PERTURB = '''
def _perturb(r):
    if isinstance(r, bool):
        return not r
    if isinstance(r, (int, float)):
        return r + 1
    if isinstance(r, str):
        return r + "x"
    if isinstance(r, list):
        return r + [None]
    if isinstance(r, tuple):
        return r + (None,)
    if isinstance(r, dict):
        return {**r, "__x": 1}
    return 0 if r is None else None
'''
_WRAPPERS = {
    "perturbed": "_perturb(r)",
    "always_eq": "_Eq()",
    "eq_subclass": "_Sub(_perturb(r))",
}
_HELPERS = _PERTURB + '''
class _Eq:
    def __eq__(self, o): return True
    def __ne__(self, o): return False
    __hash__ = object.__hash__
def _Sub(v):
    base = type(v) if type(v) in (int, str, list, tuple, float) else int
    cls = type("S", (base,), {"__eq__": lambda s, o: True, "__ne__": lambda s, o: False, "__hash__": lambda s: 0})
    return cls(v if base is not int or isinstance(v, int) else 0)
'''


def wrong_variant(code: str, fns: list[str], kind: str) -> str:
    """`code` with each of `fns` answering wrongly (kind: none | perturbed | always_eq | eq_subclass)."""
    out = code + "\n" + _HELPERS
    for fn in fns:
        body = "return None" if kind == "none" else f"r = _orig_{fn}(*a, **k)\n    return {_WRAPPERS[kind]}"
        out += f"\n_orig_{fn} = {fn}\ndef {fn}(*a, **k):\n    {body}\n"
    return out


VARIANTS = ("none", "perturbed", "always_eq", "eq_subclass")


def fenced(code: str, lang: str = "python") -> str:
    return f"Here is the solution.\n```{lang}\n{code}\n```\n"


def humaneval(path: Path) -> list[dict]:
    """[{"task_id", "code", "fn", "test_cases"}] with the prompt kept as the trusted test context."""
    out = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            p = json.loads(line)
            tests = {"type": "check", "test": p["test"], "entry_point": p["entry_point"], "prompt": p["prompt"]}
            out.append({"task_id": p["task_id"], "code": p["prompt"] + p["canonical_solution"], "fn": [p["entry_point"]],
                        "test_cases": json.dumps(tests)})
    return out


def mbpp(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        t = json.loads(line)
        code = t["code"].replace("\r\n", "\n")
        defined = set(re.findall(r"^def\s+(\w+)", code, re.M))
        called = set(re.findall(r"(\w+)\s*\(", " ".join(t["test_list"])))
        out.append({"task_id": t["task_id"], "code": code, "fn": sorted(defined & called),
                    "test_cases": json.dumps({"type": "asserts", "setup": t["test_setup_code"], "asserts": t["test_list"]})})
    return out


def _stdio(cases: list[tuple[str, str]]) -> str:
    return json.dumps({"type": "stdio", "cases": [{"input": i, "output": o} for i, o in cases]})


# name -> (cases, python, c++, [(mutant name, language, code)])
STDIO_PROBLEMS: dict[str, tuple] = {
    "sum_list": (
        [("3\n1 2 3\n", "6\n"), ("1\n-5\n", "-5\n"), ("4\n1000000000 1000000000 1000000000 1000000000\n", "4000000000\n")],
        "n = int(input())\nprint(sum(map(int, input().split())))\n",
        "#include <bits/stdc++.h>\nint main(){int n; std::cin>>n; long long s=0,x; for(int i=0;i<n;i++){std::cin>>x;s+=x;}"
        " std::cout<<s<<\"\\n\";}\n",
        [("off_by_one", "python", "n = int(input())\nprint(sum(map(int, input().split())) + 1)\n"),
         ("overflow", "cpp", "#include <bits/stdc++.h>\nint main(){int n; std::cin>>n; int s=0,x; for(int i=0;i<n;i++){std::cin>>x;s+=x;}"
                             " std::cout<<s<<\"\\n\";}\n")]),
    "gcd_cases": (
        [("2\n12 18\n7 5\n", "6\n1\n"), ("1\n100 75\n", "25\n"), ("3\n1 1\n0 9\n81 27\n", "1\n9\n27\n")],
        "import math, sys\ndata = sys.stdin.read().split()\nt = int(data[0])\n"
        "for i in range(t):\n    print(math.gcd(int(data[1 + 2 * i]), int(data[2 + 2 * i])))\n",
        "#include <bits/stdc++.h>\nint main(){int t; std::cin>>t; while(t--){long long a,b; std::cin>>a>>b;"
        " std::cout<<std::gcd(a,b)<<\"\\n\";}}\n",
        [("wrong_op", "python", "import math, sys\ndata = sys.stdin.read().split()\nt = int(data[0])\n"
                                "for i in range(t):\n    print(math.lcm(int(data[1 + 2 * i]), int(data[2 + 2 * i])))\n"),
         ("skips_last", "cpp", "#include <bits/stdc++.h>\nint main(){int t; std::cin>>t; t--; while(t-- > 0){long long a,b;"
                               " std::cin>>a>>b; std::cout<<std::gcd(a,b)<<\"\\n\";}}\n")]),
    "max_subarray": (
        [("5\n-2 1 -3 4 -1\n", "4\n"), ("3\n-3 -1 -2\n", "-1\n"), ("6\n2 -1 2 3 -9 4\n", "6\n")],
        "input()\nbest, cur = None, 0\nfor x in map(int, input().split()):\n    cur = max(x, cur + x)\n"
        "    best = cur if best is None else max(best, cur)\nprint(best)\n",
        "#include <bits/stdc++.h>\nint main(){int n; std::cin>>n; long long best=LLONG_MIN,cur=0,x;"
        " for(int i=0;i<n;i++){std::cin>>x; cur=std::max(x,cur+x); best=std::max(best,cur);} std::cout<<best<<\"\\n\";}\n",
        [("starts_at_zero", "python", "input()\nbest, cur = 0, 0\nfor x in map(int, input().split()):\n"
                                      "    cur = max(x, cur + x)\n    best = max(best, cur)\nprint(best)\n"),
         ("wrong_op", "cpp", "#include <bits/stdc++.h>\nint main(){int n; std::cin>>n; long long best=LLONG_MIN,cur=0,x;"
                             " for(int i=0;i<n;i++){std::cin>>x; cur=std::min(x,cur+x); best=std::max(best,cur);}"
                             " std::cout<<best<<\"\\n\";}\n")]),
    "average": (  # float output: 2.5 and 2.500000 are the same answer
        [("2\n2 3\n", "2.500000\n"), ("3\n1 1 2\n", "1.333333\n"), ("1\n7\n", "7.000000\n")],
        "n = int(input())\nprint(sum(map(int, input().split())) / n)\n",
        "#include <bits/stdc++.h>\nint main(){int n; std::cin>>n; double s=0,x; for(int i=0;i<n;i++){std::cin>>x;s+=x;}"
        " printf(\"%.9f\\n\", s/n);}\n",
        [("integer_division", "python", "n = int(input())\nprint(sum(map(int, input().split())) // n)\n"),
         ("off_by_one", "cpp", "#include <bits/stdc++.h>\nint main(){int n; std::cin>>n; double s=0,x; for(int i=0;i<n;i++)"
                               "{std::cin>>x;s+=x;} printf(\"%.9f\\n\", s/(n+1));}\n")]),
    "reverse_words": (
        [("hello world\n", "world hello\n"), ("a b  c\n", "c b a\n"), ("one\n", "one\n")],
        "print(' '.join(reversed(input().split())))\n",
        "#include <bits/stdc++.h>\nint main(){std::vector<std::string> w; std::string s; while(std::cin>>s) w.push_back(s);"
        " for(size_t i=w.size(); i-- > 0;) std::cout<<w[i]<<(i?\" \":\"\\n\");}\n",
        [("not_reversed", "python", "print(' '.join(input().split()))\n"),
         ("drops_first", "cpp", "#include <bits/stdc++.h>\nint main(){std::vector<std::string> w; std::string s; std::cin>>s;"
                                " while(std::cin>>s) w.push_back(s); for(size_t i=w.size(); i-- > 0;) std::cout<<w[i]<<\" \";"
                                " std::cout<<\"\\n\";}\n")]),
}


def stdio_rows() -> tuple[list[dict], list[dict]]:
    """(known-correct rows, known-wrong rows): each {"name", "answer", "test_cases"}."""
    good, bad = [], []
    for name, (cases, py, cpp, mutants) in STDIO_PROBLEMS.items():
        tc = _stdio(cases)
        good += [{"name": f"{name}/python", "answer": fenced(py), "test_cases": tc},
                 {"name": f"{name}/cpp", "answer": fenced(cpp, "cpp"), "test_cases": tc}]
        bad += [{"name": f"{name}/{m}/{lang}", "answer": fenced(code, lang), "test_cases": tc} for m, lang, code in mutants]
    return good, bad
