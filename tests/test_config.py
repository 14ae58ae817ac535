"""Config resolution: presets, overrides and one-line errors for bad input."""

import pytest

from engine.config import DEFAULTS, load_preset, num_eigs, preset_names, resolve, stiff_dim
from engine.errors import ConfigError


def test_every_preset_resolves():
    names = preset_names()
    for required in ("dice-quick", "dice-quick-ee", "dice-ce", "dice-ce-gd", "cifar-ce", "cifar-mse",
                     "af-ce", "sst-ce", "digits-ce", "digits-ce-gd"):
        assert required in names
    for name in names:
        cfg = load_preset(name)
        assert cfg["preset"] == name
        assert cfg["description"]


def test_paper_presets_use_the_paper_setting():
    for name in ("dice-ce", "cifar-ce", "cifar-mse", "af-ce", "sst-ce"):
        cfg = load_preset(name)
        assert cfg["model"]["depth"] == 6 and cfg["model"]["width"] == 512
        assert cfg["model"]["activation"] == "elu" and cfg["model"]["dtype"] == "float64"
        assert cfg["train"]["solver"] == "ee"
        assert cfg["metrics"]["snapshot_every"] == 100
        twin = load_preset(name + "-gd")
        assert twin["train"]["solver"] == "gd"
        assert twin["model"] == cfg["model"] and twin["data"] == cfg["data"]


def test_overrides_are_typed():
    cfg = load_preset("dice-quick", ["train.lr=0.05", "model.width=16", "metrics.layer_metrics=false",
                                     "train.solver=ee"])
    assert cfg["train"]["lr"] == 0.05 and isinstance(cfg["train"]["lr"], float)
    assert cfg["model"]["width"] == 16 and isinstance(cfg["model"]["width"], int)
    assert cfg["metrics"]["layer_metrics"] is False
    assert cfg["train"]["solver"] == "ee"


def test_defaults_fill_missing_keys():
    cfg = resolve({})
    assert cfg["model"] == DEFAULTS["model"]
    assert cfg["model"]["init_gain"] == 0.75  # decided by measurement (docs/metrics.md §5)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrr=0.1", "did you mean 'train.lr'"),
        ("model.widht=3", "did you mean 'model.width'"),
        ("train.lr=abc", "train.lr must be a number"),
        ("train.lr=-1", "train.lr must be > 0"),
        ("train.lr=0", "train.lr must be > 0"),
        ("model.width=3.5", "model.width must be an integer"),
        ("train.solver=adam", "train.solver must be one of gd, ee, rk4"),
        ("nonsense", "--set expects key=value"),
        ("train.max_steps=-3", "train.max_steps must be >= 0"),
        ("metrics.layer_metrics=maybe", "must be true or false"),
    ],
)
def test_bad_overrides_give_one_clear_line(override, message):
    with pytest.raises(ConfigError) as err:
        load_preset("dice-quick", [override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ConfigError) as err:
        load_preset("dice-quik")
    text = str(err.value)
    assert "did you mean 'dice-quick'" in text and "dice-ce" in text


def test_eigen_counts_follow_the_spec():
    ee = load_preset("dice-quick-ee")
    assert stiff_dim(ee, 6) == 6 and num_eigs(ee, 6) == 7
    assert num_eigs(load_preset("dice-quick-ee", ["eig.k=3"]), 6) == 4
    gd = load_preset("dice-quick", ["eig.num=2"])
    assert num_eigs(gd, 6) == 2


def test_missing_presets_folder_is_a_clear_error(tmp_path):
    from engine.config import find_presets_dir

    with pytest.raises(ConfigError, match="no presets found: neither .*_presets .* nor .*presets"):
        find_presets_dir(tmp_path / "engine")


def test_packaged_presets_come_before_a_checkout(tmp_path):
    from engine.config import find_presets_dir

    (tmp_path / "presets").mkdir()
    assert find_presets_dir(tmp_path / "engine") == tmp_path / "presets"  # a checkout
    (tmp_path / "engine" / "_presets").mkdir(parents=True)
    assert find_presets_dir(tmp_path / "engine") == tmp_path / "engine" / "_presets"  # installed
