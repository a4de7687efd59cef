"""What ``graphnursery serve`` makes of its graph arguments, and graphs' versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graphnursery import Config
from graphnursery.errors import ConfigError
from graphnursery.sources import parse_graphs, read_dotenv, source_version


def test_a_bare_source_is_named_after_its_module() -> None:
    specs = parse_graphs("app/chat.py:graph app.summarize:graph examples/echo.py")
    assert [(s.name, s.source) for s in specs] == [
        ("chat", "app/chat.py:graph"),
        ("summarize", "app.summarize:graph"),
        ("echo", "examples/echo.py"),
    ]


def test_named_sources_and_the_default_is_the_first() -> None:
    config = Config(graph="chat=app/chat.py:graph sum=app.summarize:graph")
    assert [s.name for s in config.graphs] == ["chat", "sum"]
    assert config.default_graph.name == "chat"


def test_two_graphs_of_one_name_are_refused() -> None:
    with pytest.raises(ConfigError, match="two graphs are named 'a'"):
        parse_graphs("a=x:graph a=y:graph")


def test_a_bad_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="graph name"):
        parse_graphs("-bad=x:graph")


def test_langgraph_json_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "langgraph.json").write_text(
        json.dumps({"graphs": {"a": "./src/a.py:graph", "b": "pkg.mod:make"}, "env": {"K": 1}})
    )
    a, b = parse_graphs(str(tmp_path / "langgraph.json"))
    assert a.source == f"{tmp_path}/src/a.py:graph" and a.env == {"K": "1"}
    assert b.source == "pkg.mod:make"


def test_langgraph_json_without_graphs_is_named(tmp_path: Path) -> None:
    (tmp_path / "langgraph.json").write_text(json.dumps({"dependencies": ["."]}))
    with pytest.raises(ConfigError, match="'graphs' must map"):
        parse_graphs(str(tmp_path / "langgraph.json"))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        parse_graphs(str(tmp_path / "nope.toml"))


def test_toml_unknown_graph_setting_is_named(tmp_path: Path) -> None:
    (tmp_path / "g.toml").write_text('[graphs.a]\nsource = "x:graph"\nwokers = 2\n')
    with pytest.raises(ConfigError, match="unknown settings wokers"):
        parse_graphs(str(tmp_path / "g.toml"))


def test_dotenv_quotes_comments_and_export(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text('# c\nexport A=1\nB="two words"\nC=x # note\n\nD\n')
    assert read_dotenv(tmp_path / ".env") == {"A": "1", "B": "two words", "C": "x"}


def test_a_package_version_covers_its_other_modules(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    graph = package / "graph.py"
    graph.write_text("from .helper import answer\n\ndef graph(x):\n    return answer()\n")
    (package / "helper.py").write_text("def answer():\n    return 1\n")
    before = source_version(f"{graph}:graph")
    assert source_version(f"{graph}:graph") == before  # stable
    (package / "helper.py").write_text("def answer():\n    return 2\n")
    assert source_version(f"{graph}:graph") != before


def test_a_lone_file_version_is_its_content(tmp_path: Path) -> None:
    (tmp_path / "g.py").write_text("def graph(x):\n    return x\n")
    (tmp_path / "other.py").write_text("x = 1\n")
    before = source_version(f"{tmp_path}/g.py:graph")
    (tmp_path / "other.py").write_text("x = 2\n")  # not a package: not covered
    assert source_version(f"{tmp_path}/g.py:graph") == before


def test_a_module_source_version_reads_its_package_without_importing_it() -> None:
    # graphnursery itself: found on sys.path, hashed, not re-imported.
    assert len(source_version("graphnursery.sources:parse_graphs")) == 12
    with pytest.raises(FileNotFoundError):
        source_version("no_such_package_xyz:graph")


def test_a_toml_files_api_keys_and_workspaces_tables_become_settings(tmp_path: Path) -> None:
    from graphnursery import Config
    from graphnursery.sources import server_settings_of

    path = tmp_path / "graphnursery.toml"
    path.write_text(
        'api_keys = {"key-a" = "team-a", "key-b" = "team-b"}\n'
        "workspace_max_queued = 10\n"
        "[workspaces.team-a]\nmax_running = 2\nrate = 5\n"
        '[graphs.echo]\nsource = "examples/echo.py"\n'
    )
    settings = server_settings_of(str(path))
    config = Config(graph=str(path), **settings)
    assert config.authenticator().authenticate("Bearer key-b", None).workspace == "team-b"
    limits = config.workspace_limits_by_name()
    assert (limits("team-a").max_running, limits("team-a").rate) == (2, 5.0)
    assert limits("team-a").max_queued == 10  # the default, where its own gives none
    assert limits("team-b").max_running == 0
