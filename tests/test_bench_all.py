"""``telesurgery-bench all``: the results block is composed from the benchmarks' markdown and
spliced into the README between its markers, replacing the old block and nothing else."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.all_bench import BEGIN, END, BenchmarkError, compose, run, splice


def test_splice_replaces_only_the_block_and_appends_when_missing() -> None:
    readme = f"# title\n\nintro\n\n{BEGIN}\nold results\n{END}\n\n## Layout\nkeep\n"
    block = f"{BEGIN}\nnew results\n{END}\n"
    got = splice(readme, block)
    assert "old results" not in got and "new results" in got
    assert got.startswith("# title\n\nintro\n\n") and got.endswith("\n\n## Layout\nkeep\n")
    assert splice(got, block) == got  # idempotent
    appended = splice("# title\n", block)
    assert appended == "# title\n\n" + block


def test_compose_takes_each_benchmarks_markdown_and_plots(tmp_path) -> None:
    (tmp_path / "e2e.md").write_text("| stage | ms |\n|---|---|\n| total | 1.2 |\n")
    (tmp_path / "e2e-cdf.png").write_bytes(b"png")
    block = compose(
        tmp_path,
        [
            ("Latency", tmp_path / "e2e.md", ["e2e-cdf.png", "absent.png"]),
            ("Loop", tmp_path / "x.md", []),
        ],
        "test machine",
    )
    assert block.startswith(BEGIN) and block.rstrip().endswith(END)
    assert "### Latency" in block and "| total | 1.2 |" in block
    assert "e2e-cdf.png`" in block and "absent.png" not in block
    assert "### Loop" in block and "was not written" in block
    assert "test machine" in block


def test_run_stops_at_a_failing_step_and_leaves_the_readme_alone(tmp_path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{BEGIN}\nold\n{END}\n")
    calls: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        calls.append(argv)
        return 1 if argv[0] == "e2e" else 0

    args = argparse.Namespace(
        out_dir=str(tmp_path / "out"), readme=str(readme), quick=True, seeds=1, skip=[]
    )
    with pytest.raises(BenchmarkError, match="e2e"):
        run(args, fake_main)
    assert [c[0] for c in calls] == ["tremor", "e2e"]
    assert "old" in readme.read_text()


def test_run_writes_results_and_updates_the_readme(tmp_path) -> None:
    out = tmp_path / "out"
    readme = tmp_path / "README.md"
    readme.write_text("intro\n")

    def fake_main(argv: list[str]) -> int:
        name = {"tremor": "tremor.md", "e2e": "e2e.md", "loop": "loop.md"}.get(argv[0])
        if name:
            (out / name).write_text(f"table of {argv[0]}\n")
        return 0

    args = argparse.Namespace(
        out_dir=str(out), readme=str(readme), quick=True, seeds=1, skip=["study"]
    )
    assert run(args, fake_main) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and "table of e2e" in text and "table of loop" in text
    assert (out / "RESULTS.md").read_text() in text
