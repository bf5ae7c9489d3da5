"""The command line builds the simulator's settings and refuses bad ones with exit status 2."""

from __future__ import annotations

import pytest

from pipeline.cli import EXIT_USAGE, build_parser, main
from pipeline.cli.simulate import simulator_config
from pipeline.simulator import DEFAULT_API_KEY, TIERS


def config_for(*argv: str):  # type: ignore[no-untyped-def]
    return simulator_config(build_parser().parse_args(["simulate", *argv]))


def test_tier_preset_with_an_explicit_override() -> None:
    config = config_for("--tier", "basic", "--rpm", "120", "--per-second")
    assert config.limits.requests_per_minute == 120
    assert config.limits.tokens_per_minute == TIERS["basic"].tokens_per_minute == 100_000
    assert config.limits.max_concurrency == 10
    assert config.limits.per_second is True


def test_pro_tier_numbers_from_the_reference() -> None:
    limits = config_for("--tier", "pro").limits
    assert (limits.requests_per_minute, limits.tokens_per_minute, limits.max_concurrency) == (
        200,
        400_000,
        40,
    )


def test_faults_latency_and_keys() -> None:
    config = config_for(
        "--overloaded", "0.1", "--drop", "0.02", "--seed", "9", "--latency", "0.5",
        "--latency-per-token", "0.01", "--reply-tokens", "10,20", "--api-key", "k1",
    )  # fmt: skip
    assert (config.faults.overloaded, config.faults.drop, config.faults.seed) == (0.1, 0.02, 9)
    assert config.latency.seconds(100) == pytest.approx(1.5)
    assert config.reply_tokens == (10, 20)
    assert config.api_keys == frozenset({"k1"})
    assert "k1" not in repr(config)


def test_storm_and_truncation_faults() -> None:
    faults = config_for("--truncated", "0.05", "--rate-limited", "0.3").faults
    assert (faults.truncated, faults.rate_limited, faults.rate_limited_retry_after) == (
        0.05,
        0.3,
        1.0,
    )
    assert config_for("--rate-limited-retry-after", "-1").faults.rate_limited_retry_after is None
    assert config_for("--rate-limited-retry-after", "0").faults.rate_limited_retry_after == 0


def test_default_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config_for().api_keys == frozenset({DEFAULT_API_KEY})
    monkeypatch.setenv("PIPELINE_SIMULATOR_KEY", "sk-from-env")
    assert config_for().api_keys == frozenset({"sk-from-env"})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--overloaded", "1.5"], "faults.overloaded: must be between 0 and 1, got 1.5"),
        (["--overloaded", "0.6", "--api-error", "0.6"], "faults: the rates add up to more than 1"),
        (["--rpm", "0"], "limits.requests_per_minute: must be a whole number of at least 1"),
        (["--latency", "-1"], "latency.fixed: must be 0 or more"),
    ],
)
def test_bad_settings_exit_2_with_the_field_named(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", *argv]) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_python_dash_m_entry_point_shows_version() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("pipeline ")
