"""Records per second reading a large dataset, JSONL and Parquet, next to the bare reader of each.

For each source the table shows three rows: the bare library read (json.loads per line, or
pyarrow's to_pylist) as the baseline, tuneforge's `load_examples` (reading, shape detection,
normalisation, FILE:LINE bookkeeping), and `tuneforge data check` as a user runs it (also
tokenizing every example through the default model's chat template and measuring it).

    python bench/data_sources.py [--records 100000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def write_sources(folder: Path, count: int) -> dict[str, Path]:
    """The same chat records as JSONL and as Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [{"messages": [{"role": "user", "content": f"What is the code of locker {i}?"},
                             {"role": "assistant", "content": f"Locker {i} opens with the code {i * 7919 % 10000:04d}."}]}
               for i in range(count)]
    jsonl = folder / "records.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    parquet = folder / "records.parquet"
    pq.write_table(pa.Table.from_pylist(records), parquet)
    return {"JSONL": jsonl, "Parquet": parquet}


def bare_read(path: Path) -> int:
    """The floor: the library's own reader, nothing else."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return len(pq.read_table(path).to_pylist())
    with path.open(encoding="utf-8") as handle:
        return sum(1 for line in handle if json.loads(line))


def timed(work, *args) -> tuple[float, object]:
    """Seconds `work(*args)` takes, and what it returns."""
    started = time.perf_counter()
    result = work(*args)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()

    from tuneforge.core.api.data import check_data
    from tuneforge.core.data.formats import load_examples

    check_data(Path(__file__).resolve().parents[1] / "core" / "datasets" / "brindlewick.jsonl")  # warm: imports, the model
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sources = write_sources(Path(tmp), args.records)
        for name, path in sources.items():
            bare, _ = timed(bare_read, path)
            load, loaded = timed(load_examples, path)
            assert len(loaded.examples) == args.records and not loaded.problems
            check, report = timed(check_data, path)
            assert not report.problems
            rows += [(name, "bare reader (baseline)", bare, 1.0), (name, "load_examples", load, load / bare),
                     (name, "data check (tokenized)", check, check / bare)]
    print(f"{args.records:,} chat records\n")
    print(f"{'source':<8} {'step':<24} {'seconds':>8} {'records/s':>11} {'vs bare':>8}")
    for name, step, seconds, ratio in rows:
        print(f"{name:<8} {step:<24} {seconds:>8.2f} {args.records / seconds:>11,.0f} {ratio:>7.1f}×")


if __name__ == "__main__":
    main()
