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


@pytest.mark.parametrize("env,var,field,detail", [
    ({"STREAMGRADE_OPENAI__RPM": "abc"}, "STREAMGRADE_OPENAI__RPM", "openai.rpm", "expected int, got str"),
    ({"STREAMGRADE_SETTLE_S": "soon"}, "STREAMGRADE_SETTLE_S", "watch.settle_s", "expected float, got str"),
    ({"STREAMGRADE_JUDGE": "magic"}, "STREAMGRADE_JUDGE", "run.judge", "invalid enum value"),
    ({"STREAMGRADE_OPENAI__RMP": "5"}, "STREAMGRADE_OPENAI__RMP", "openai.rmp", "unknown field"),
    ({"STREAMGRADE_PIPELINE__GRADE_WORKERS": "0"}, "STREAMGRADE_PIPELINE__GRADE_WORKERS", "pipeline.grade_workers",
     "must be > 0"),
    # the alias loses to the explicit variable, which is then the one named
    ({"STREAMGRADE_SETTLE_S": "1", "STREAMGRADE_WATCH__SETTLE_S": "later"}, "STREAMGRADE_WATCH__SETTLE_S",
     "watch.settle_s", "expected float"),
])
def test_bad_environment_value_names_the_variable(tmp_path: Path, env, var, field, detail):
    f = tmp_path / "c.toml"
    f.write_text("[openai]\nrpm = 10\n[watch]\nsettle_s = 1.0\n")  # a file that is fine
    for path in (None, f):
        with pytest.raises(ConfigError) as err:
            load_config(path, env=env)
        msg = str(err.value)
        assert msg.startswith(f"environment variable {var}: "), msg
        assert field in msg and detail in msg.lower() and str(f) not in msg


@pytest.mark.parametrize("text,field", [
    ("[openai]\nrpm = 'x'\n", "openai.rpm"),
    ("[openai.prices.m]\ninput = 'cheap'\n", "openai.prices"),
    ("[openai]\nrmp = 5\n", "openai.rmp"),
    ("run = 5\n", "run"),
    ("[pipeline]\ngrade_workers = 0\n", "pipeline.grade_workers"),
])
def test_bad_file_value_names_the_file_not_the_environment(tmp_path: Path, text, field):
    f = tmp_path / "c.toml"
    f.write_text(text)
    env = {"STREAMGRADE_OPENAI__MODEL": "m", "STREAMGRADE_SETTLE_S": "2"}  # fine values from the environment
    with pytest.raises(ConfigError) as err:
        load_config(f, env=env)
    msg = str(err.value)
    assert msg.startswith(f"{f}: {field}"), msg
    assert "environment variable" not in msg
    # an environment variable that sets the same field wins over the file's bad value
    if field == "openai.rpm":
        assert load_config(f, env={"STREAMGRADE_OPENAI__RPM": "7"}).openai.rpm == 7
