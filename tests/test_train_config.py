"""Training configuration: defaults, a TOML file and --key=value on top, type-checked."""

from dataclasses import replace

import pytest

from training.config import ConfigError, TrainConfig, load_config, to_toml
from training.library import LibraryConfig
from training.train import main


def test_file_then_command_line_override_the_defaults(tmp_path) -> None:
    f = tmp_path / "run.toml"
    f.write_text('rgb_epochs = 7\nrgb_lr = 1\nrgb_dwell_aug = [0.1, 2]\n'
                 '[library]\nstacks = 50\npixels = 900\n')
    cfg = load_config(f, ["--rgb_epochs=9", "--library.stacks=60", "--el-hidden=32",
                          "--ae_c_sweep=(1, 2.5)"])
    assert cfg.rgb_epochs == 9 and cfg.el_hidden == 32  # the command line wins over the file
    assert cfg.rgb_lr == 1.0 and isinstance(cfg.rgb_lr, float)  # int accepted for a float
    assert cfg.rgb_dwell_aug == (0.1, 2.0) and cfg.ae_c_sweep == (1.0, 2.5)
    assert cfg.library == replace(LibraryConfig(), stacks=60, pixels=900)
    assert cfg.el_epochs == TrainConfig().el_epochs  # untouched keys keep their defaults


def test_printed_config_reads_back_equal(tmp_path) -> None:
    cfg = load_config(None, ["--seed=5", "--library.p_glaze=0.25", "--dwell_aug=(0.01, 0.1)"])
    (tmp_path / "back.toml").write_text(to_toml(cfg))
    assert load_config(tmp_path / "back.toml") == cfg
    assert load_config(None) == TrainConfig()


@pytest.mark.parametrize("args, message", [
    (["--rgb_epoch=5"], "unknown config key 'rgb_epoch' (did you mean 'rgb_epochs'?)"),
    (["--library.stackz=5"], "unknown config key 'library.stackz'"),
    (["--rgb_epochs=many"], "config key 'rgb_epochs' must be int, got str 'many'"),
    (["--rgb_epochs=2.5"], "config key 'rgb_epochs' must be int, got float 2.5"),
    (["--rgb_lr=True"], "config key 'rgb_lr' must be float, got bool True"),
    (["--rgb_dwell_aug=(1, 2, 3)"], "config key 'rgb_dwell_aug' must be a list of 2"),
    (["--ae_c_sweep=(1, 'x')"], "config key 'ae_c_sweep[1]' must be float"),
    (["--library=3"], "config key 'library' is a table of LibraryConfig values"),
    (["rgb_epochs=5"], "expected --key=value, got 'rgb_epochs=5'"),
])
def test_bad_keys_and_types_name_the_key(args, message) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, args)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_file_values_are_refused_too(tmp_path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text('[library]\npixels = "many"\n')
    with pytest.raises(ConfigError, match=r"config key 'library\.pixels' must be int"):
        load_config(f)


def test_command_line_error_is_one_line(tmp_path) -> None:
    for bad, key in (("--el_epoch=3", "'el_epoch'"), ("--el_epochs=x", "'el_epochs'")):
        with pytest.raises(SystemExit) as e:
            main(["default", "--data", str(tmp_path), "--out", str(tmp_path), bad])
        assert isinstance(e.value.code, str) and "\n" not in e.value.code
        assert e.value.code.startswith("python -m training.train default: ") and key in e.value.code
