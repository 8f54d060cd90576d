"""How a response splits into thinking and answer, and when it was cut off: the papers' rule.

distill records the split in `teacher_responses`; verify scores only the answer part. Both call this
module, so the part a verdict reads is the part the table shows.

Answer part: `<answer>...</answer>`, else the text after `</think>`, else the Sky-T1 solution block
(`<|begin_of_solution|>...`). A response with no tags at all is all answer (chat models, the demo's
135M model); the verifiers then read only its explicit final answer (last `\\boxed{}` or an answer
statement), never a number found somewhere in the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Parsed:
    think: str | None
    answer: str | None
    format: str  # tagged | r1 | skyt1 | untagged
    closed: bool  # False when an opened section never closes (the text was cut off)


def _between(text: str, open_tag: str, close_tag: str) -> tuple[str | None, bool, int]:
    """(content, closed, end index) of the first open_tag..close_tag; content runs to the end if unclosed."""
    i = text.find(open_tag)
    if i < 0:
        return None, True, -1
    start = i + len(open_tag)
    j = text.find(close_tag, start)
    if j < 0:
        return text[start:].strip(), False, len(text)
    return text[start:j].strip(), True, j + len(close_tag)


_THINK = ("<think>", "</think>")
_ANSWER = ("<answer>", "</answer>")
_THOUGHT = ("<|begin_of_thought|>", "<|end_of_thought|>")
_SOLUTION = ("<|begin_of_solution|>", "<|end_of_solution|>")


def _two_part(text: str, think_tags, answer_tags, fmt: str) -> Parsed:
    """Thinking in think_tags, answer in answer_tags or (R1 style) the text after the thinking."""
    open_t, close_t = think_tags
    if open_t in text:
        think, think_closed, end = _between(text, open_t, close_t)
    else:  # templates that put the opening tag in the prompt: only the closing tag is generated
        j = text.find(close_t)
        think, think_closed, end = text[:j].strip(), True, j + len(close_t)
    if not think_closed:
        return Parsed(think or None, None, fmt, False)
    rest = text[end:]
    if answer_tags[0] in rest:
        answer, answer_closed, _ = _between(rest, *answer_tags)
        return Parsed(think or None, answer or None, "tagged" if fmt == "r1" else fmt, answer_closed)
    return Parsed(think or None, rest.strip() or None, fmt, True)


def parse_response(text: str | None) -> Parsed:
    """Split a response into thinking and answer.

    `<think>..</think><answer>..</answer>`, R1 style `<think>..</think> answer`, Sky-T1
    `<|begin_of_thought|>..<|end_of_thought|><|begin_of_solution|>..<|end_of_solution|>`; a response
    with no tags at all is all answer. `closed` is False when an opened section never closes.
    """
    text = text or ""
    if _THOUGHT[0] in text or _THOUGHT[1] in text:
        return _two_part(text, _THOUGHT, _SOLUTION, "skyt1")
    if _THINK[0] in text or _THINK[1] in text:
        return _two_part(text, _THINK, _ANSWER, "r1")
    if _ANSWER[0] in text:
        answer, closed, _ = _between(text, *_ANSWER)
        return Parsed(None, answer or None, "tagged", closed)
    if _SOLUTION[0] in text:
        answer, closed, _ = _between(text, *_SOLUTION)
        return Parsed(None, answer or None, "skyt1", closed)
    return Parsed(None, text.strip() or None, "untagged", True)


# ---------------------------------------------------------------- truncation

# Finish reasons that say the model ended on its own. `None`/"imported": nobody said (imported traces).
ENDED = frozenset({"stop", "eos", "end_turn", "stop_sequence"})
UNKNOWN = frozenset({None, "", "imported"})

# A last word that cannot end a sentence: the text stopped in the middle of one.
_CONNECTORS = frozenset(
    "a an the and or but so then thus hence therefore of to in on at by for with from into as is are was were be "
    "been we i you it its this that these those which where when if since because than not has have had can "
    "will would should must let get gets gives equals say means".split())
_DANGLING = tuple(",;:=+-/\\(^_&{[<")
_BEGIN, _END = re.compile(r"\\begin\{"), re.compile(r"\\end\{")


def _unbalanced(text: str) -> str | None:
    if text.count("```") % 2:
        return "an unclosed code block"
    if text.count("$$") % 2:
        return "an unclosed $$ formula"
    if text.count("\\[") > text.count("\\]"):
        return "an unclosed \\[ formula"
    if len(_BEGIN.findall(text)) > len(_END.findall(text)):
        return "an unclosed \\begin{...} environment"
    i = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if i >= 0 and text.count("{", i) > text.count("}", i):
        return "an unclosed \\boxed{"
    return None


def cut_off(text: str) -> str | None:
    """Why an untagged text with no finish reason looks cut off mid-way, or None.

    Conservative on purpose: a text counts as cut off when a delimiter it opened never closes, or when
    it ends on a character or word that cannot end a sentence (`,`, `=`, `(`, "the", "of", "is" ...).
    A text ending in a word, a number or punctuation that can end a sentence is taken as complete.
    """
    body = text.rstrip()
    if not body:
        return "empty response"
    why = _unbalanced(body)
    if why:
        return why
    if body.endswith(_DANGLING):
        return f"ends on {body[-1]!r}"
    last = re.findall(r"[A-Za-z]+$", body)
    if last and last[0].lower() in _CONNECTORS:
        return f"ends mid-sentence on {last[0]!r}"
    return None


def truncation(text: str | None, finish_reason: str | None, parsed: Parsed | None = None) -> str | None:
    """Why a response is truncated (never a pass), or None when it is complete.

    - the engine says so: finish_reason `length` (or any reason other than a normal stop);
    - an opened thinking / answer / solution section never closes;
    - imported traces (no finish reason): a closed thinking part with nothing after it, or an untagged
      text that stops mid-sentence (`cut_off`).
    """
    parsed = parsed or parse_response(text)
    if finish_reason not in UNKNOWN and finish_reason not in ENDED:
        return f"finish_reason {finish_reason}"
    if not parsed.closed:
        return "an opened thinking or answer section never closes"
    if finish_reason in ENDED:
        return None
    if parsed.format != "untagged" and not parsed.answer:
        return "no answer part after the thinking"
    if parsed.format == "untagged":
        return cut_off(text or "")
    return None
