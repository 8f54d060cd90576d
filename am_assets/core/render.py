"""Report rendering shared by stages (train's loss curve, evaluate's comparison chart)."""

from __future__ import annotations

import base64


def png_markdown(png: bytes, alt: str) -> str:
    """A PNG inlined as Markdown (Dagster metadata shows it without a file server)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
