"""What `export` may write over: OUT is replaced only when a previous export wrote it (a
QONNX file whose ONNX producer is quantsearch, an hls4ml project);
a user's file, another tool's ONNX model or a folder at OUT is refused in one ``error: OUT:``
line with exit status 2 and left byte for byte. And ``--verify --samples N`` past the
validation split is refused, as ``summary --batch`` is, not cut to fewer than asked. The
exports that write run as real `quantsearch` processes; the refusals, which end before any
write, run in-process through the CLI's entry point (a process's start-up is most of their cost).
Referees: the ``onnx`` package (it builds the other tool's model and checks ours), the files'
bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fault.harness import digest, in_process, quantsearch

pytestmark = pytest.mark.slow
QONNX = ["export", "--to", "qonnx", "--from-run", "runs/s"]


def _other_tools_model() -> bytes:
    """A valid ONNX model another exporter wrote (one Relu; producer "pytorch")."""
    onnx = pytest.importorskip("onnx", reason="the export extra: pip install 'quantsearch[export]'")
    h, tp = onnx.helper, onnx.TensorProto
    graph = h.make_graph(
        [h.make_node("Relu", ["x"], ["y"])],
        "theirs",
        [h.make_tensor_value_info("x", tp.FLOAT, [1, 4])],
        [h.make_tensor_value_info("y", tp.FLOAT, [1, 4])],
    )
    model = h.make_model(graph, producer_name="pytorch")
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def test_qonnx_replaces_only_a_previous_export(
    work: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx = pytest.importorskip("onnx", reason="the export extra: pip install 'quantsearch[export]'")
    monkeypatch.chdir(work)
    (work / "notes.onnx").write_bytes(b"a user's notes")
    (work / "theirs.onnx").write_bytes(_other_tools_model())
    (work / "dir.onnx").mkdir()
    (work / "dir.onnx" / "keep.txt").write_text("keep")
    before = digest(work)
    for name, kind in (
        ("notes.onnx", "a file"),
        ("theirs.onnx", "a file"),
        ("dir.onnx", "a folder"),
    ):
        line = in_process([*QONNX, name], monkeypatch, capsys).one_error_line()
        assert line.startswith(
            f"error: OUT: got '{name}', {kind} that is not a QONNX export's, "
        ), line
        assert "allowed: a new file or one a previous" in line, line
    assert digest(work) == before  # every file as it was, nothing written beside them
    (work / "empty.onnx").touch()  # nothing to lose: written
    first = quantsearch([*QONNX, "empty.onnx"], cwd=work)
    assert first.code == 0, first.err
    again = quantsearch([*QONNX, "empty.onnx"], cwd=work)  # a previous export: replaced
    assert again.code == 0 and "replaced the previous empty.onnx" in again.out, again.err
    model = onnx.load(str(work / "empty.onnx"))
    onnx.checker.check_model(model)
    assert model.producer_name == "quantsearch"


def test_hls4ml_refuses_a_users_file_at_out(
    work: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("hls4ml", reason="the export extra: pip install 'quantsearch[export]'")
    monkeypatch.chdir(work)
    (work / "prj").write_text("a user's file")
    args = ["export", "--to", "hls4ml", "prj", "--from-run", "runs/s", "--float-as", "fixed(32,16)"]
    line = in_process(args, monkeypatch, capsys).one_error_line()
    assert line.startswith(
        "error: OUT: got 'prj', a file, allowed: a new folder or one a previous "
    ), line
    assert (work / "prj").read_text() == "a user's file"
    assert [p.name for p in work.iterdir() if p.name.startswith(".prj")] == []


def test_verify_samples_past_the_split_are_refused(
    work: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("qonnx", reason="the export extra: pip install 'quantsearch[export]'")
    monkeypatch.chdir(work)
    args = [*QONNX, "m.onnx", "--verify", "--samples", "361"]
    line = in_process(args, monkeypatch, capsys).one_error_line()
    # the digits validation split: 360 samples (20% of 1797, as tests/export/test_cli checks)
    assert line == (
        "error: --samples: got 361, allowed: 1 to 360 (the validation split's samples)"
    ), line
    line = in_process([*QONNX, "m.onnx", "--samples", "5"], monkeypatch, capsys).one_error_line()
    assert line == "error: --samples: got it without --verify, allowed: with it (else unused)"
    assert not (work / "m.onnx").exists()  # nothing written by a refused command
    ok = quantsearch([*QONNX, "m.onnx", "--verify", "--samples", "360", "--json"], cwd=work)
    assert ok.code == 0, ok.err
    assert '"samples": 360' in ok.out
