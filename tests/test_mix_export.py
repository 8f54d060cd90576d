"""The export layouts build each row's message list without pl.concat_list (slow on structs): every row
must get its own three messages, in order, with nulls and awkward text kept, as concat_list gives them."""

import json

import polars as pl

from am_assets.mix.export import LINEAGE_COLUMNS, am_40m_layout, am_layout, chat_layout, with_messages


def _rows(n: int = 300) -> pl.DataFrame:
    k = pl.int_range(n, eager=True)
    df = pl.DataFrame({c: [f"{c}-{i}" for i in range(n)] for c in LINEAGE_COLUMNS})
    return df.with_columns(
        system_prompt=pl.format("system {} \"quoted\" é\n", k),
        question=pl.when(k % 7 == 0).then(None).otherwise(pl.format("question {}", k)),
        think=pl.when(k % 5 == 0).then(None).otherwise(pl.format("think {}", k)),
        answer=pl.concat_str([pl.lit("\\boxed{"), k.cast(pl.String), pl.lit("}")]), response=pl.format("raw {}", k),
        reference_answer=pl.format("{}", k), test_cases=pl.lit(None, pl.String), source=pl.lit("gsm8k"),
        teacher=pl.when(k % 2 == 0).then(pl.lit("t0")).otherwise(pl.lit("odd.name$[x]")), model=pl.lit("m"),
        pass_rates=pl.when(k % 3 == 0).then(None).otherwise(pl.lit('{"t0": 0.25, "odd.name$[x]": 1}')),
        stage=pl.lit("stage1"), response_id=pl.format("r{}", k))


def test_each_row_gets_its_own_messages_in_order():
    rows = with_messages(_rows().drop("mix_row_id"))
    for i, r in enumerate(rows.iter_rows(named=True)):
        chat = json.loads(r["messages"])
        assert [m["role"] for m in chat] == ["system", "user", "assistant"]
        assert [m["content"] for m in chat] == [r["system_prompt"], r["question"], r["assistant"]]
        tagged = f"<think>\nthink {i}\n</think>\n<answer>\n\\boxed{{{i}}}\n</answer>"
        assert r["assistant"] == (f"raw {i}" if i % 5 == 0 else tagged)
    am, chat = am_layout(rows), chat_layout(rows)
    assert am.columns == chat.columns == ["messages", *LINEAGE_COLUMNS]
    assert am["response_id"].to_list() == rows["response_id"].to_list()
    # the reference: what pl.concat_list builds, row by row
    expected = rows.select(pl.concat_list([pl.struct(role=pl.lit(role), content=pl.col(col)) for role, col in
                                           (("system", "system_prompt"), ("user", "question"),
                                            ("assistant", "assistant"))]).alias("messages"))["messages"]
    assert chat["messages"].equals(expected)
    assert [m["content"] for m in am["messages"][7]] == [rows["system_prompt"][7], None, rows["assistant"][7]]
    assert am["messages"][8][1]["info"] == {"source": "gsm8k", "reference_answer": "8", "test_case": None,
                                           "think_content": None, "answer_content": None}
    assert am["messages"][8][2]["info"]["source"] == "t0" and am["messages"][9][2]["info"]["source"] == "odd.name$[x]"
    assert am_layout(rows.head(0)).height == 0 and chat_layout(rows.head(0)).schema == chat.schema


def test_am_40m_pass_rate_is_the_rows_teacher():
    rows = with_messages(_rows().drop("mix_row_id"))
    rates = am_40m_layout(rows)["pass_rate"].to_list()
    assert rates[:6] == [None, 1.0, 0.25, None, 0.25, 1.0]  # null pass_rates -> null; each row its teacher's


def test_export_writer_writes_shards_in_order_and_a_failed_chunk_keeps_the_previous_exports(tmp_path):
    import pytest

    from am_assets.mix.export import ExportWriter

    rows = with_messages(_rows().drop("mix_row_id")).with_columns(mix_row_id=pl.format("m{}", pl.int_range(pl.len())))
    writer = ExportWriter(tmp_path)
    for chunk in rows.iter_slices(70):  # written on the writer's thread, one chunk in flight
        writer.write(chunk)
    files = writer.close()
    lines = files["chat_stage1"].read_text().splitlines()
    assert [json.loads(line)["response_id"] for line in lines] == rows["response_id"].to_list()
    assert pl.read_parquet(files["parquet"])["response_id"].to_list() == rows["response_id"].to_list()

    broken = ExportWriter(tmp_path)
    broken.write(rows.head(10))
    broken.write(rows.head(10).drop("answer", "response"))  # fails on the writer's thread
    with pytest.raises(pl.exceptions.ColumnNotFoundError):
        broken.close()
    assert files["chat_stage1"].read_text().splitlines() == lines  # the previous exports stay whole


def test_export_writer_appends_and_a_rollback_restores_the_exports(tmp_path):
    from am_assets.mix.export import ExportWriter

    rows = with_messages(_rows().drop("mix_row_id")).with_columns(mix_row_id=pl.format("m{}", pl.int_range(pl.len())))
    first = ExportWriter(tmp_path)
    first.write(rows.head(200))
    files = first.close()
    before = {name: path.read_bytes() for name, path in files.items()}

    appended = ExportWriter(tmp_path, append=True)
    appended.write(rows.slice(200))
    files = appended.close()  # the rows after the stored ones, in every file
    lines = files["chat_stage1"].read_text().splitlines()
    assert [json.loads(line)["response_id"] for line in lines] == rows["response_id"].to_list()
    assert pl.read_parquet(files["parquet"])["response_id"].to_list() == rows["response_id"].to_list()
    assert ExportWriter(tmp_path, append=True).close() == files  # nothing appended: every file stays
    assert pl.read_parquet(files["parquet"]).height == rows.height

    failed = ExportWriter(tmp_path, append=True)
    failed.write(rows.head(50))
    failed.close()
    failed.rollback()  # the table's commit failed after the exports were written
    assert [json.loads(line)["response_id"] for line in files["chat_stage1"].read_text().splitlines()] == \
        rows["response_id"].to_list()
    assert files["am_stage1"].read_bytes()[:len(before["am_stage1"])] == before["am_stage1"]
