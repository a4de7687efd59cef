from __future__ import annotations

import pytest

from graphnursery import Config, ConfigError


def test_defaults_are_the_documented_ones() -> None:
    config = Config(graph="examples/echo.py")
    assert config.host == "127.0.0.1"
    assert config.port == 8000
    assert config.job_timeout == 300
    assert config.result_ttl == 3600
    assert config.workers >= 1
    assert config.store == "sqlite:///./graphnursery.db"


@pytest.mark.parametrize(
    ("url", "kind", "target"),
    [
        ("memory://", "memory", ""),
        ("sqlite:///./graphnursery.db", "sqlite", "./graphnursery.db"),
        ("sqlite:///jobs.db", "sqlite", "jobs.db"),
        ("sqlite:////var/lib/gn/jobs.db", "sqlite", "/var/lib/gn/jobs.db"),
        ("postgresql://gn@db:5432/jobs", "postgresql", "postgresql://gn@db:5432/jobs"),
    ],
)
def test_store_urls(url: str, kind: str, target: str) -> None:
    from graphnursery.store import parse_store_url

    parsed = parse_store_url(url)
    assert (parsed.kind, parsed.target) == (kind, target)
    assert Config(graph="examples/echo.py", store=url).store == url


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"workers": 0}, "workers"),
        ({"port": 70000}, "port"),
        ({"queue_size": -1}, "queue_size"),
        ({"job_timeout": 0}, "job_timeout"),
        ({"job_timeout": 10, "max_job_timeout": 5}, "job_timeout"),
        ({"result_ttl": float("nan")}, "result_ttl"),
        ({"log_level": "loud"}, "log_level"),
        ({"graph": " "}, "graph"),
        ({"store": "mysql://db"}, "store"),
        ({"store": "sqlite:///"}, "store"),
        ({"store": "/var/lib/jobs.db"}, "store"),
        ({"lease_seconds": 0}, "lease_seconds"),
    ],
)
def test_invalid_values_fail_naming_the_setting(settings: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config(**{"graph": "examples/echo.py", **settings})  # type: ignore[arg-type]
    assert info.value.setting == named
    assert repr(named) in str(info.value)


def test_from_env_reads_prefixed_variables() -> None:
    env = {
        "GRAPHNURSERY_GRAPH": "examples/echo.py",
        "GRAPHNURSERY_WORKERS": "3",
        "GRAPHNURSERY_JOB_TIMEOUT": "2.5",
        "GRAPHNURSERY_HOST": "::1",
    }
    config = Config.from_env(env)
    assert (config.graph, config.workers, config.job_timeout, config.host) == (
        "examples/echo.py",
        3,
        2.5,
        "::1",
    )


def test_from_env_names_a_malformed_variable() -> None:
    with pytest.raises(ConfigError, match="'workers'"):
        Config.from_env({"GRAPHNURSERY_GRAPH": "g.py", "GRAPHNURSERY_WORKERS": "many"})


def test_from_env_requires_the_graph() -> None:
    with pytest.raises(ConfigError, match="GRAPHNURSERY_GRAPH"):
        Config.from_env({})


def test_the_cli_reads_every_setting_from_the_environment_and_flags_win() -> None:
    from graphnursery.cli import config_from

    env = {
        "GRAPHNURSERY_API_KEY": "k1",
        "GRAPHNURSERY_QUEUE_SIZE": "2",
        "GRAPHNURSERY_METRICS_PUBLIC": "true",
        "GRAPHNURSERY_STORE": "memory://",
    }
    config = config_from(["serve", "examples/echo.py"], env)
    assert (config.api_key, config.queue_size, config.metrics_public) == ("k1", 2, True)
    assert config.store_url.kind == "memory"
    flagged = config_from(["serve", "examples/echo.py", "--queue-size", "7"], env)
    assert (flagged.queue_size, flagged.api_key) == (7, "k1")


def test_the_cli_names_a_malformed_variable_and_where_it_came_from() -> None:
    from graphnursery.cli import config_from

    with pytest.raises(ConfigError, match="GRAPHNURSERY_QUEUE_SIZE") as info:
        config_from(["serve", "examples/echo.py"], {"GRAPHNURSERY_QUEUE_SIZE": "lots"})
    assert info.value.setting == "queue_size"
    # A flag replaces its variable, so a bad variable behind a good flag does not matter.
    config = config_from(
        ["serve", "examples/echo.py", "--queue-size", "3"], {"GRAPHNURSERY_QUEUE_SIZE": "lots"}
    )
    assert config.queue_size == 3


def test_the_readme_settings_table_lists_every_setting_with_its_default() -> None:
    """The README's table of settings is the user's reference: one row per setting, each
    default as the Config has it (those with no plain default say so in words)."""
    from pathlib import Path

    from graphnursery.config import settings

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = text[text.index("| setting | default | meaning |") :].split("\n\n", 1)[0]
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    shown = {name.strip().strip("`"): default.strip().strip("`") for name, default in rows}
    assert sorted(shown) == sorted(field.name for field in settings())
    words = {"graph": "(required)", "workers": "CPU count", "api_key": "(none)"}
    for field in settings():
        value = field.default
        if isinstance(value, bool):
            expected = str(value).lower()
        elif isinstance(value, float) and value.is_integer():
            expected = str(int(value))
        else:
            expected = words.get(field.name, "(none)" if value == "" else str(value))
        assert shown[field.name] == expected, field.name
