"""Quantized checkpoints reload as the quantized model, bit for bit."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

import tests.tied
from quantsearch.checkpoint import save_checkpoint
from quantsearch.data import DataSplits
from quantsearch.errors import ConfigError
from quantsearch.graph import trace
from quantsearch.models import build_model
from quantsearch.passes.transform import ResolvedConfig, calibrate, quantize
from quantsearch.quantized import load_quantized, save_quantized

F84 = {"format": "fixed", "width": 8, "frac_width": 4}
F42 = {"format": "fixed", "width": 4, "frac_width": 2}


def test_every_role_and_batch_norm_round_trip_bit_exact(
    mlp: nn.Module, digits: DataSplits, tmp_path: Path
) -> None:
    gm = trace(mlp, digits.val.x[:8])
    auto = {"format": "fixed", "width": 6, "frac_width": "auto"}
    config = {
        "seq_blocks_0": {"data_in": F84, "weight": F42, "bias": F84, "data_out": auto},
        "seq_blocks_1": {"weight": F84, "bias": F84},  # BatchNorm's gamma and beta
        "seq_blocks_2": {"data_out": F42},
        "seq_blocks_6": {
            "weight": {"format": "minifloat", "exponent_width": 3, "mantissa_width": 2}
        },
    }
    stats = calibrate(gm, digits.train.x[:64])
    qgm = quantize(gm, ResolvedConfig.from_dict(config, gm=gm, calibration=stats))
    path = save_quantized(
        tmp_path / "q.pt", qgm, model_name="mlp-digits", dataset="digits", sample_shape=(64,)
    )
    reloaded = load_quantized(path)
    x = digits.test.x
    assert torch.equal(reloaded(x), qgm(x))
    assert not reloaded.training
    assert ResolvedConfig.from_graph(reloaded) == ResolvedConfig.from_graph(qgm)


def test_a_float_checkpoint_is_refused(mlp_checkpoint: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--load: got '.*', a float checkpoint"):
        load_quantized(mlp_checkpoint)


def test_a_model_in_training_mode_is_refused(
    mlp: nn.Module, digits: DataSplits, tmp_path: Path
) -> None:
    # a traced graph shares the model's submodules (torch.fx keeps them by reference), so
    # .train() on a trace of the session's `mlp` would leave it in training mode for later tests
    gm = trace(copy.deepcopy(mlp), digits.val.x[:8]).train()
    qgm = quantize(gm, ResolvedConfig.from_dict({"seq_blocks_0": {"weight": F42}}, gm=gm))
    with pytest.raises(ConfigError, match=r"training mode"):
        save_quantized(
            tmp_path / "q.pt", qgm, model_name="mlp-digits", dataset="digits", sample_shape=(64,)
        )


USER_MODELS = """
import torch
from torch import nn


class Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(32, 8)
        self.fc = nn.Linear(8 * 4, 5)

    def forward(self, idx):
        return self.fc(self.emb(idx).flatten(1))


def embed():
    return Embed()


def mlp64():
    return nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 5)).double()
"""


@pytest.mark.parametrize(
    ("build", "x"),
    [("embed", torch.randint(0, 32, (6, 4))), ("mlp64", torch.randn(6, 16, dtype=torch.float64))],
)
def test_a_user_model_of_integer_or_float64_input_round_trips(
    build: str, x: torch.Tensor, tmp_path: Path
) -> None:
    """The sample's dtype is recorded: tracing again with float32 zeros failed for an
    embedding's indices and a float64 model's first Linear."""
    (tmp_path / "user.py").write_text(USER_MODELS)
    torch.manual_seed(0)
    model = build_model(f"user.py:{build}", base_dir=tmp_path).eval()
    gm = trace(model, x)
    first = {"embed": "fc", "mlp64": "_0"}[build]  # the first Linear
    qgm = quantize(gm, ResolvedConfig.from_dict({first: {"data_in": F84, "weight": F42}}, gm=gm))
    path = save_quantized(
        tmp_path / "q.pt", qgm, model_name=f"user.py:{build}", dataset="user",
        sample_shape=tuple(x.shape[1:]), base_dir=tmp_path,
    )  # fmt: skip
    reloaded = load_quantized(path)
    assert torch.equal(reloaded(x), qgm(x)) and reloaded(x).dtype == qgm(x).dtype


def test_a_quantized_checkpoint_where_float_weights_go_says_so(
    mlp: nn.Module, digits: DataSplits, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where float weights go (a session's model: search, quantize, train), a quantized
    checkpoint gives the float model its quantized values, with one warning that says so (the
    checkpoint's formats are not applied); ``summary --load quantized.pt`` applies them and
    warns of nothing (tests/cli/test_summary.py checks its costs)."""
    import json

    from quantsearch.config import load_config
    from quantsearch.session import QuantizedCheckpointWarning, open_session
    from tests.cli.bad_input import exit_status

    gm = trace(mlp, digits.val.x[:8])
    qgm = quantize(gm, ResolvedConfig.from_dict({"seq_blocks_0": {"weight": F42}}, gm=gm))
    q = save_quantized(
        tmp_path / "q.pt", qgm, model_name="mlp-digits", dataset="digits", sample_shape=(64,)
    )
    (tmp_path / "c.toml").write_text('[model]\nname = "mlp-digits"\n[data]\nname = "digits"\n')
    with pytest.warns(QuantizedCheckpointWarning, match=r"^--load: .* is a quantized checkpoint"):
        session = open_session(load_config(tmp_path / "c.toml"), q)
    assert torch.equal(session.model.seq_blocks[0].weight, qgm.get_submodule("seq_blocks.0").weight)
    code = exit_status(["summary", "--load", str(q), "--json"])
    printed = capsys.readouterr()
    assert code == 0 and printed.err.strip() == "", printed.err
    out = json.loads(printed.out)
    nodes = {n["node"]: n["precision"] for n in out["nodes"]}
    assert nodes["seq_blocks_0"] == "weight=fixed(4,2)"


def _tied(
    tmp_path: Path, rc_table: dict[str, dict[str, dict[str, object]]]
) -> tuple[nn.Module, torch.Tensor, fx.GraphModule, ResolvedConfig, fx.GraphModule]:
    """TiedHead (tests/tied.py: head tied to emb, fc called twice) as a user model file,
    traced, and quantized in eval mode with ``rc_table``."""
    source = Path(tests.tied.__file__).read_text() + "\n\ndef build():\n    return TiedHead()\n"
    (tmp_path / "tied.py").write_text(source)
    torch.manual_seed(0)
    model = build_model("tied.py:build", base_dir=tmp_path).eval()
    idx = torch.randint(0, 10, (8, 4))
    gm = trace(model, idx)
    rc = ResolvedConfig.from_dict(rc_table, gm=gm)
    return model, idx, gm, rc, quantize(gm, rc)


def _save(tmp_path: Path, name: str, qgm: nn.Module) -> Path:
    return save_quantized(
        tmp_path / name, qgm, model_name="tied.py:build", dataset="user", sample_shape=(4,),
        base_dir=tmp_path,
    )  # fmt: skip


def _stored_bytes(path: Path) -> int:
    """The bytes of the distinct storages torch.load finds in the file's state dict."""
    sd = torch.load(path, weights_only=True)["state_dict"]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage() for t in sd.values()}
    return sum(s.nbytes() for s in storages.values())


@pytest.mark.parametrize(
    ("table", "ties"),
    [
        ({"fc": {"weight": F42}}, {"head": "emb", "fc": "quantized_nodes.fc_1"}),
        ({"head": {"weight": F42}}, {"head": "emb"}),
    ],
    ids=["float-head-and-fc-called-twice-apart", "rounded-head"],
)
def test_a_tied_weight_is_stored_once_and_tied_again_after_load(
    table: dict[str, dict[str, dict[str, object]]], ties: dict[str, str], tmp_path: Path
) -> None:
    """The head tied to the embedding (and fc, called twice with two configs) was stored
    twice and reloaded as two parameters, so fine-tuning the reloaded model untied them.
    Referees: torch's own deduplication of tied parameters (``model.parameters()``), and
    ``quantize(gm.train())``, which trains copies of one tensor as one (test_quantize)."""
    model, idx, gm, rc, qgm = _tied(tmp_path, table)
    path = _save(tmp_path, "q.pt", qgm)
    assert _stored_bytes(path) == sum(p.nbytes for p in model.parameters())
    untied = build_model("tied.py:build", base_dir=tmp_path).eval()
    untied.load_state_dict(model.state_dict())
    untied.head.weight = nn.Parameter(model.emb.weight.detach().clone())  # equal, not tied
    other = _save(tmp_path, "untied.pt", quantize(trace(untied, idx), rc))
    assert other.stat().st_size - path.stat().st_size >= model.emb.weight.nbytes
    reloaded = load_quantized(path)
    with torch.no_grad():
        assert torch.equal(reloaded(idx), qgm(idx))
    for name, src in ties.items():
        assert reloaded.get_submodule(name).weight is reloaded.get_submodule(src).weight
    y = torch.randint(0, 10, (8,))
    trained = [reloaded.train(), quantize(gm.train(), rc)]
    for net in trained:
        assert len(list(net.parameters())) == len(list(model.parameters())) == 3
        opt = torch.optim.SGD(net.parameters(), lr=0.5)
        F.cross_entropy(net(idx), y).backward()
        opt.step()
    gm.eval()
    with torch.no_grad():
        assert torch.equal(trained[0].eval()(idx), trained[1].eval()(idx))
    assert not torch.equal(reloaded.emb.weight, model.emb.weight)


def test_a_file_written_before_ties_still_loads_and_versions_say_what_they_need(
    tmp_path: Path,
) -> None:
    """A quantized checkpoint as the writer before ties wrote it (every tensor under each
    of its names, format_version 1) loads as before; a file that leaves a rounded copy out
    is format_version 2, which older readers refuse in one line, and one that only shares
    storage stays 1, which they read."""
    _, idx, _, _, qgm = _tied(tmp_path, {"head": {"weight": F42}})
    config = {
        "quantize": ResolvedConfig.from_graph(qgm).to_dict(),
        "sample_shape": [4],
        "sample_dtype": "int64",
        "base_dir": str(tmp_path.resolve()),
    }
    old = save_checkpoint(
        tmp_path / "old.pt", qgm, model_name="tied.py:build", dataset="user", config=config
    )
    assert torch.load(old, weights_only=True)["format_version"] == 1
    with torch.no_grad():
        assert torch.equal(load_quantized(old)(idx), qgm(idx))
    assert torch.load(_save(tmp_path, "new.pt", qgm), weights_only=True)["format_version"] == 2
    _, _, _, _, float_head = _tied(tmp_path, {"fc_1": {"data_out": F84}})
    payload = torch.load(_save(tmp_path, "shared.pt", float_head), weights_only=True)
    assert payload["format_version"] == 1 and payload["tied"] == {
        "head.weight": {"from": "emb.weight", "format": None},
        "quantized_nodes.fc_1.weight": {"from": "fc.weight", "format": None},  # fc's 2nd call
        "quantized_nodes.fc_1.bias": {"from": "fc.bias", "format": None},
    }


def test_a_model_fine_tuned_in_place_then_switched_to_eval_reloads_bit_for_bit(
    tmp_path: Path,
) -> None:
    """Its layers round their float masters in every forward pass: the file stored the
    masters, and the reload, which takes stored weights as on their grids, computed
    something else."""
    _, idx, gm, rc, _ = _tied(tmp_path, {"head": {"weight": F42}, "fc": {"bias": F42}})
    qgm = quantize(gm.train(), rc)
    opt = torch.optim.SGD(qgm.parameters(), lr=0.5)
    F.cross_entropy(qgm(idx), torch.randint(0, 10, (8,))).backward()
    opt.step()
    path = _save(tmp_path, "q.pt", qgm.eval())
    with torch.no_grad():
        assert torch.equal(load_quantized(path)(idx), qgm(idx))


@pytest.mark.parametrize(
    ("tied", "match"),
    [
        ({"head.weight": {"from": "nope", "format": None}}, r"has tied 'head\.weight' = "),
        ({"head.weight": {"from": "emb.weight", "format": {"format": "fixd"}}}, r"has tied"),
        ([1], r"has tied 'tied' = \[1\], allowed: a stored tensor's name"),
        (
            {
                "head.weight": {"from": "emb.weight", "format": F42},
                "fc.bias": {"from": "emb.weight", "format": None},  # in the file, not in the model
            },
            r"does not fit its model: it ties 'fc\.bias' to 'emb\.weight', allowed: ",
        ),
    ],
)
def test_a_damaged_tie_table_is_one_line(tied: object, match: str, tmp_path: Path) -> None:
    _, _, _, _, qgm = _tied(tmp_path, {"head": {"weight": F42}})
    path = _save(tmp_path, "q.pt", qgm)
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "tied": tied}, path)
    with pytest.raises(ConfigError, match=r"^--load: got '.*q\.pt', which " + match.lstrip("^")):
        load_quantized(path)


def test_a_tie_whose_format_cannot_round_its_source_is_one_line(tmp_path: Path) -> None:
    """An integer tensor (a file quantsearch did not write): fixed point's rounding raised
    TypeError from inside torch.load's caller."""
    _, _, _, _, qgm = _tied(tmp_path, {"head": {"weight": F42}})
    path = _save(tmp_path, "q.pt", qgm)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["emb.weight"] = torch.arange(60).view(10, 6)
    torch.save(payload, path)
    with pytest.raises(
        ConfigError,
        match=r"^--load: got '.*', which has tied 'head\.weight': fixed\(4,2\) cannot round ",
    ):
        load_quantized(path)
