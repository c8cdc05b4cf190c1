"""Configuration layering: CLI > environment > file > defaults; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamgrade.config import Config, api_key, load_config
from streamgrade.errors import ConfigError

SHIPPED = Path(__file__).parent.parent / "configs" / "streamgrade.toml"


def test_shipped_config_documents_the_defaults():
    assert load_config(SHIPPED, env={}) == Config()


def test_precedence_cli_over_env_over_file_over_defaults(tmp_path: Path):
    f = tmp_path / "c.toml"
    f.write_text('[watch]\nsettle_s = 2.0\n[openai]\nrpm = 10\nmodel = "from-file"\n[pipeline]\ngrade_workers = 3\n')
    env = {"STREAMGRADE_OPENAI__RPM": "20", "STREAMGRADE_MODEL": "from-env"}
    cfg = load_config(f, env=env, overrides={"openai": {"rpm": 30}, "run": {"judge": None}})
    assert cfg.openai.rpm == 30  # CLI
    assert cfg.openai.model == "from-env"  # env over file
    assert cfg.watch.settle_s == 2.0  # file over default
    assert cfg.pipeline.grade_workers == 3
    assert cfg.run.judge == "auto"  # a None override leaves the lower layers
    assert cfg.chunking.max_tokens == 2000  # default


@pytest.mark.parametrize("text,needle", [
    ("[openai]\nrpm = 'x'\n", "openai.rpm"),
    ("[openai]\nrmp = 5\n", "rmp"),
    ("[pipeline]\ngrade_workers = 0\n", "grade_workers"),
    ("[run\n", "invalid TOML"),
])
def test_bad_file_names_the_field(tmp_path: Path, text, needle):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=needle) as err:
        load_config(f, env={})
    assert str(f) in str(err.value) or needle == "grade_workers"


def test_env_errors_and_key_source():
    with pytest.raises(ConfigError, match="STREAMGRADE_NOPE__X"):
        load_config(env={"STREAMGRADE_NOPE__X": "1"})
    assert api_key({"OPENAI_API_KEY": "b", "STREAMGRADE_API_KEY": "a"}) == "a"
    assert api_key({"OPENAI_API_KEY": "b"}) == "b"
    assert api_key({}) is None
    # the key is not part of the config, so it can never be dumped with it
    assert "sk-" not in repr(load_config(env={"STREAMGRADE_API_KEY": "sk-zzz"}))


@pytest.mark.parametrize("key,problem", [
    ("sk-Zq8Wx3Vt9Lm2\r\n", "line break"), ("\tsk-Zq8Wx3Vt9Lm2", "whitespace"),
    ("sk-Zq8W\x1bx3Vt9Lm2", "control character"), ("sk-Zq8Wx3Vt9Lm2\u00a0", "whitespace"),
    ("sk-Zq8Wx3Vt9Lm2\u2019", "non-ASCII"),
])
def test_api_key_that_cannot_be_sent_is_a_config_error(key, problem):
    from streamgrade.config import check_api_key

    with pytest.raises(ConfigError, match=problem) as err:
        check_api_key({"OPENAI_API_KEY": key})
    assert "OPENAI_API_KEY" in str(err.value) and "Zq8W" not in str(err.value)
    check_api_key({"STREAMGRADE_API_KEY": "sk-Zq8Wx3Vt9Lm2", "OPENAI_API_KEY": key})  # the one in use is fine
    check_api_key({"OPENAI_API_KEY": "EMPTY"})
    check_api_key({})
