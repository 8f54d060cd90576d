"""What a source path can be besides one plain file: compressed files, Arrow files, folders and globs
of files, `datasets.save_to_disk` folders and Hub-cache dataset folders.

A source is read as a sequence of parts in sorted order; each row's `source_row` is `part:row` when
there are several parts, so lineage still finds the raw row.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import lzma
from pathlib import Path
from typing import Any, Iterator

COMPRESSIONS = (".gz", ".zst", ".bz2", ".xz")
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv",
           ".tsv": "tsv", ".arrow": "arrow"}
_MAGIC = ((b"\x1f\x8b", "gz"), (b"\x28\xb5\x2f\xfd", "zst"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))


def strip_compression(name: str) -> str:
    lower = name.lower()
    for ext in COMPRESSIONS:
        if lower.endswith(ext):
            return name[: -len(ext)]
    return name


def format_of(path: Path) -> str | None:
    """jsonl | json | parquet | csv | tsv | arrow | hf_dataset, or None for an unknown kind of file."""
    if path.is_dir():
        return "hf_dataset" if is_saved_dataset(path) else None
    base = strip_compression(path.name).lower()
    return next((fmt for ext, fmt in FORMATS.items() if base.endswith(ext)), None)


def read_errors() -> tuple[type[BaseException], ...]:
    """What reading a broken or cut-off container raises (a file-level error, not a row's)."""
    import zlib

    errors: list[type[BaseException]] = [OSError, EOFError, zlib.error, lzma.LZMAError, ValueError]  # + ArrowInvalid
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(errors)


def open_decompressed(path: Path):
    """A binary file object over the file's bytes, decompressed by what its first bytes say (not its
    name): .gz, .zst, .bz2 and .xz stream, so a big file is never loaded whole."""
    with open(path, "rb") as f:
        head = f.read(6)
    kind = next((k for magic, k in _MAGIC if head.startswith(magic)), None)
    if kind == "gz":
        return gzip.open(path, "rb")
    if kind == "bz2":
        return bz2.open(path, "rb")
    if kind == "xz":
        return lzma.open(path, "rb")
    if kind == "zst":
        import io

        import zstandard

        raw = open(path, "rb")
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
    return open(path, "rb")


# ---------------------------------------------------------------- folders and globs


def is_saved_dataset(path: Path) -> bool:
    """A `datasets.save_to_disk` folder (one dataset or a DatasetDict of splits)."""
    return (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file() or (
        path / "state.json").is_file()


def expand(path: Path) -> list[Path]:
    """The parts of a source path, in sorted order: the file itself; a saved dataset folder as one part;
    every readable data file under any other folder (a Hub-cache snapshot, a folder of Parquet shards
    such as train-00000-of-00012.parquet), recursively; or the files a glob pattern matches."""
    text = str(path)
    if any(c in text for c in "*?["):
        return sorted(Path(p) for p in glob.glob(text, recursive=True) if format_of(Path(p)))
    if path.is_dir() and not is_saved_dataset(path):
        found = []
        for p in sorted(path.rglob("*")):
            if any(part.startswith(".") for part in p.relative_to(path).parts):
                continue  # .cache, .git, lock files
            if p.is_dir() and is_saved_dataset(p):
                found.append(p)
            elif p.is_file() and format_of(p) and not any(d in p.parents for d in found):
                found.append(p)
        return found
    return [path]


# ---------------------------------------------------------------- Arrow and saved datasets


def read_arrow(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Arrow IPC, stream (what `datasets` caches) or file format, one record batch at a time."""
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        try:
            reader = pa.ipc.open_stream(source)
            batches = iter(reader)
        except pa.ArrowInvalid:
            reader = pa.ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        row = 0
        for batch in batches:
            for record in batch.to_pylist():
                row += 1
                yield row, record


def read_saved_dataset(path: Path, split: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a `save_to_disk` folder through `datasets` (memory-mapped: rows stream from disk). A
    DatasetDict gives `split` (default: train, else its only split)."""
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        names = list(ds.keys())
        name = split or ("train" if "train" in names else names[0] if len(names) == 1 else None)
        if name not in ds:
            raise ValueError(f"{path}: splits {names}; name one with `split:`")
        ds = ds[name]
    yield from enumerate(ds, start=1)  # memory-mapped Arrow: one row at a time
