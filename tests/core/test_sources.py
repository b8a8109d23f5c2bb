"""Every source a dataset comes in: TSV, gzip, Parquet, Arrow, a save_to_disk folder, a hub dataset id.

Each is written here the way the field writes it (pyarrow, `datasets`, gzip), read back to the
same examples as the JSONL it mirrors, and its broken records are named by file and row.
"""

from __future__ import annotations

import gzip
import json

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tuneforge.core.cli import main
from tuneforge.core.config import RunConfig
from tuneforge.core.data.formats import load_examples, load_run_data
from tuneforge.core.errors import DataError

ROWS = [{"prompt": f"What is fact {i}?", "completion": f"Fact {i} is true."} for i in range(5)]
BROKEN = {"prompt": "What is fact 9?", "completion": 9}


def expected_messages(row: dict) -> list[dict]:
    return [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["completion"]}]


def test_tsv_with_a_header_reads_as_rows(tmp_path):
    path = tmp_path / "facts.tsv"
    path.write_text("prompt\tcompletion\n" + "".join(f"{r['prompt']}\t{r['completion']}\n" for r in ROWS), encoding="utf-8")
    loaded = load_examples(path)
    assert loaded.shape == "prompt_completion" and not loaded.problems
    assert [e.messages for e in loaded.examples] == [expected_messages(r) for r in ROWS]
    assert loaded.examples[0].source == f"{path}:2"  # line 1 is the header


@pytest.mark.parametrize("name", ["facts.jsonl.gz", "facts.json.gz"])
def test_gzipped_jsonl_and_json_arrays_read_as_the_plain_files(tmp_path, name):
    path = tmp_path / name
    text = "\n".join(json.dumps(r) for r in ROWS) + "\n" if name.endswith(".jsonl.gz") else json.dumps(ROWS, indent=1)
    path.write_bytes(gzip.compress(text.encode()))
    loaded = load_examples(path)
    assert [e.messages for e in loaded.examples] == [expected_messages(r) for r in ROWS] and not loaded.problems


def test_a_gzip_cut_short_is_refused_with_the_line_it_broke_after(tmp_path):
    path = tmp_path / "facts.jsonl.gz"
    whole = gzip.compress(("\n".join(json.dumps(r) for r in ROWS * 200) + "\n").encode())
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="breaks off after line") as info:
        load_examples(path)
    assert str(path) in info.value.message and "download or copy" in info.value.hint


def test_parquet_rows_are_read_and_a_bad_row_is_named_by_its_number(tmp_path):
    path = tmp_path / "facts.parquet"
    rows = [*ROWS, {"prompt": BROKEN["prompt"], "completion": None}]
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=2)  # several row groups: read a batch at a time
    loaded = load_examples(path)
    assert [e.messages for e in loaded.examples] == [expected_messages(r) for r in ROWS]
    assert loaded.examples[2].source == f"{path}:row 3"
    assert len(loaded.problems) == 1 and loaded.problems[0].startswith(f"{path}:row 6: ")


def test_arrow_files_in_the_ipc_and_the_stream_format(tmp_path):
    table = pa.Table.from_pylist(ROWS)
    ipc_file = tmp_path / "facts.arrow"
    with pa.ipc.new_file(ipc_file, table.schema) as writer:
        writer.write_table(table)
    saved = tmp_path / "saved"
    datasets.Dataset.from_list(ROWS).save_to_disk(saved)
    stream_file = next(saved.glob("*.arrow"))  # what `datasets` writes: the Arrow stream format
    for path in (ipc_file, stream_file):
        loaded = load_examples(path)
        assert [e.messages for e in loaded.examples] == [expected_messages(r) for r in ROWS], path


def test_a_saved_dataset_folder_and_its_splits(tmp_path):
    folder = tmp_path / "saved"
    splits = {"train": ROWS[:3], "validation": ROWS[3:]}
    datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()}).save_to_disk(folder)
    train = load_examples(folder)
    assert [e.messages for e in train.examples] == [expected_messages(r) for r in ROWS[:3]]
    assert train.examples[0].source == f"{folder}[train]:row 1"
    assert len(load_examples(folder, split="validation").examples) == 2
    with pytest.raises(DataError, match="has no split 'test'") as info:
        load_examples(folder, split="test")
    assert "train, validation" in info.value.message
    # The same folder as eval data reads its validation split, not the training one.
    config = RunConfig(data=str(folder), eval_data=str(folder))
    loaded, eval_loaded = load_run_data(config)
    assert len(loaded.examples) == 3 and len(eval_loaded.examples) == 2


def test_a_hub_dataset_that_is_not_cached_offline_is_explained(monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError) as info:
        load_examples("tuneforge-tests/no-such-dataset:default")
    assert "tuneforge-tests/no-such-dataset:default: not in the local dataset cache" in info.value.message
    assert "datasets.load_dataset('tuneforge-tests/no-such-dataset', 'default')" in info.value.hint
    with pytest.raises(DataError, match="no such file or folder"):
        load_examples("missing/facts.jsonl")  # a file name, not a hub id


def test_a_hub_dataset_reads_through_the_datasets_library(monkeypatch):
    """The datasets library's own loader, standing in for the hub: the id, config and split reach it."""
    calls = []

    def load_dataset(hub_id, config=None):
        calls.append((hub_id, config))
        return datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS), "test": datasets.Dataset.from_list([BROKEN])})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    loaded = load_examples("someone/facts:default")
    assert calls == [("someone/facts", "default")]
    assert [e.messages for e in loaded.examples] == [expected_messages(r) for r in ROWS]
    assert loaded.examples[4].source == "someone/facts:default[train]:row 5"
    test = load_examples("someone/facts", split="test")
    assert test.problems and test.problems[0].startswith("someone/facts[test]:row 1: ")


def test_data_check_reads_a_parquet_file(tmp_path, capsys, default_model):
    path = tmp_path / "facts.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS * 4), path)
    assert main(["data", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "prompt_completion" in out and "records    20" in out


def test_columnar_rows_with_keys_filled_as_null_read_like_the_jsonl(tmp_path):
    """Arrow gives every message every key any message has (weight, tool_calls, …), null where it was absent."""
    records = [{"messages": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Lyon.", "weight": 0},
                             {"role": "user", "content": "Really?"}, {"role": "assistant", "content": "Paris."}]},
               {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}]
    path = tmp_path / "chats.parquet"
    pq.write_table(pa.Table.from_pylist(records), path)
    assert pq.read_table(path).to_pylist()[1]["messages"][1]["weight"] is None
    loaded = load_examples(path)
    assert not loaded.problems
    assert [m.get("weight") for m in loaded.examples[0].messages] == [None, 0, None, None]
    assert loaded.examples[1].messages == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def test_a_run_trains_from_a_saved_dataset_whose_files_its_fingerprint_covers(home, tiny_config, tmp_path):
    """The whole path: create_run reads it, the trainer trains on it, the resume fingerprint covers its files."""
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.train import train_run
    from tuneforge.core.train.resume import data_digest

    folder = tmp_path / "saved"
    facts = [{"prompt": f"What is the code of locker {i}?", "completion": f"Locker {i} opens with {i * 37 % 100:02d}."}
             for i in range(8)]
    datasets.Dataset.from_list(facts).save_to_disk(folder)
    before = data_digest(folder)
    run = create_run(tiny_config(data=str(folder), max_steps=8), home / "run")
    result = train_run(run, echo=None)
    losses = [step.loss for step in run.history().steps]
    assert result.steps == 8 and losses[-1] < losses[0]  # it learned from the saved dataset's rows
    datasets.Dataset.from_list(facts[:7]).save_to_disk(tmp_path / "other")
    assert data_digest(tmp_path / "other") != before  # a changed saved dataset is a changed run
