"""The last \\boxed{...} of a text. No imports: the math worker, a plain script started with `python -I`,
loads this file by path (`verify/math_worker.py`), so ingest, verify and the worker share one implementation."""


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (or \\fbox{...}) with balanced braces, or None."""
    if not text:
        return None
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    while start >= 0:
        i = text.find("{", start)
        if i >= 0 and text[start:i].strip() in ("\\boxed", "\\fbox"):
            depth = 0
            for j in range(i, len(text)):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1:j].strip()
        if start == 0:
            break
        start = max(text.rfind("\\boxed", 0, start), text.rfind("\\fbox", 0, start))
    return None
