"""The CLI as people already know them (no engine): typed options, help, completion, name resolution,
strict spec files, ``gc --dry-run`` and ``down`` of nothing."""

from __future__ import annotations

import json
import os

import click
import pytest

from clusterkit import cluster, records
from clusterkit.cli import main
from clusterkit.cli.options import SpecChoice, SpecInt
from clusterkit.errors import InvalidValue, SpecFileError
from clusterkit.facts import BACKENDS
from clusterkit.listing import Listed
from clusterkit.spec import find_spec_file, load_spec_file, resolve_spec

#: No engine for these tests: a socket nothing listens on.
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def _commands(group: click.Group, path: str = "clusterkit"):
    for name, command in group.commands.items():
        yield f"{path} {name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{path} {name}")


def _option(command: click.Command, flag: str) -> click.Option:
    return next(p for p in command.params if isinstance(p, click.Option) and flag in p.opts)


# -- typed options and help ----------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        ("up", "--workers"),
        ("up", "--cores"),
        ("up", "--scheduler-port"),
        ("up", "--dashboard-port"),
        ("up", "--timeout"),
        ("up", "--max-replicas-per-node"),
        ("scale", "--timeout"),
        ("render", "--workers"),
    ],
)
def test_numbers_are_integers(command, flag):
    option = _option(main.commands[command], flag)
    assert isinstance(option.type, SpecInt) and option.type.name == "integer"
    assert option.type.convert("3", option, None) == 3
    assert option.type.convert("two", option, None) == "two", "the spec refuses it with its own message"


def test_backend_is_a_choice_of_the_backends():
    option = _option(main.commands["up"], "--backend")
    assert isinstance(option.type, SpecChoice) and list(option.type.choices) == list(BACKENDS)


def test_every_option_has_help():
    """``logs`` options belong to the logs command's own module."""
    missing = [
        f"{path} {param.opts[0]}"
        for path, command in _commands(main)
        if not command.hidden and not path.endswith(" logs")
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden and not param.help
    ]
    assert missing == []


def test_node_and_probe_are_hidden_but_work(cli):
    shown = cli("--help")
    assert shown.returncode == 0
    listed = {line.split()[0] for line in shown.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert {"ls", "down", "status", "gc", "completion"} <= listed
    assert not {"node", "probe"} & listed
    assert main.commands["node"].hidden and main.commands["probe"].hidden
    probe = cli("probe", "--help")
    assert probe.returncode == 0 and "usage" in (probe.stdout + probe.stderr).lower()


@pytest.mark.parametrize(
    "args",
    [["ls"], ["scale", "2"], ["down"], ["gc"], ["image", "ls"], ["status"], ["up"]],
)
def test_reporting_commands_have_json(args):
    command: click.Command = main
    for word in args:
        if isinstance(command, click.Group):
            command = command.commands[word]
    assert any("--json" in p.opts for p in command.params), args


def test_status_only_looks_by_default():
    option = _option(main.commands["status"], "--repair")
    assert option.default is False and "--no-repair" in option.secondary_opts


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "workers: 0 is not valid; expected an integer from 1 to 256"),
        (["--workers", "-3"], "workers: -3 is not valid"),
        (["--workers", "two"], "workers: 'two' is not valid"),
        (["--workers", "1.5"], "workers: '1.5' is not valid"),
        (["--backend", "dsak"], "did you mean"),
        (["--timeout", "0"], "timeout: 0 is not valid"),
        (["--timeout", "soon"], "timeout: 'soon' is not valid"),
    ],
)
def test_typed_flags_keep_the_spec_messages(cli, run_dir, args, message):
    result = cli("up", "--runtime", "local", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


# -- completion ----------------------------------------------------------------------


def test_completion_script_from_click_and_from_the_command(cli):
    sourced = cli(env={"_CLUSTERKIT_COMPLETE": "bash_source"})
    assert sourced.returncode == 0 and "_clusterkit_completion" in sourced.stdout
    printed = cli("completion", "bash")
    assert printed.returncode == 0 and "_clusterkit_completion" in printed.stdout
    assert "compdef" in cli("completion", "zsh").stdout


def test_name_completes_known_clusters_without_an_engine(cli, run_dir):
    records.update("ck-alpha", wanted=1)
    records.update("ck-beta", wanted=1)
    (run_dir / "ck-local").mkdir(parents=True)
    (run_dir / "ck-local" / "state.json").write_text("{}")
    env = {
        **NO_ENGINE,
        "_CLUSTERKIT_COMPLETE": "bash_complete",
        "COMP_WORDS": "clusterkit status --name ck-",
        "COMP_CWORD": "3",
    }
    result = cli(env=env)
    assert result.returncode == 0, result.stderr
    assert [line.split(",", 1)[1] for line in result.stdout.split()] == ["ck-alpha", "ck-beta", "ck-local"]


# -- strict spec files -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("backend: dask\nworkers: 2\nworkers: 3\n", "key 'workers' is given twice (lines 2 and 3)"),
        ("scheduler-port: 9000\nscheduler_port: 9001\n", "keys 'scheduler-port' and 'scheduler_port'"),
        ("env:\n  A: 1\n  A: 2\n", "key 'A' is given twice (lines 2 and 3)"),
        ("env: {A: 1, A: 2}\n", "key 'A' is given twice (line 1)"),
    ],
)
def test_a_key_given_twice_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "clusterkit.yaml"
    path.write_text(text)
    with pytest.raises(SpecFileError) as caught:
        load_spec_file(path)
    assert message in str(caught.value) and str(path) in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_yaml_merge_may_still_override(tmp_path):
    path = tmp_path / "clusterkit.yaml"
    path.write_text("env: &base {A: '1'}\n")
    assert load_spec_file(path) == {"env": {"A": "1"}}
    path.write_text("workers: 2\nenv:\n  <<: {A: '1', B: '2'}\n  A: '3'\n")
    assert load_spec_file(path)["env"] == {"A": "3", "B": "2"}


def test_duplicate_key_through_the_command(cli, run_dir, tmp_path):
    path = tmp_path / "clusterkit.yaml"
    path.write_text("backend: dask\nworkers: 2\nworkers: 3\n")
    result = cli("up", "--runtime", "local", "--file", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: spec file '{path}': key 'workers' is given twice (lines 2 and 3); keep one"
    ]
    assert not (run_dir.exists() and any(run_dir.iterdir())), "something was started"


# -- the spec file, searched upward, and name resolution ---------------------------------------


@pytest.fixture
def project(tmp_path, monkeypatch):
    """``home/proj/clusterkit.yaml`` and a folder two levels below it, the current folder."""
    home = tmp_path / "home"
    deeper = home / "proj" / "sub" / "deeper"
    deeper.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CLUSTERKIT_NAME", raising=False)
    monkeypatch.delenv("CLUSTERKIT_CLUSTER", raising=False)
    monkeypatch.chdir(deeper)
    return home


def test_the_spec_file_is_found_upward_and_not_above_home(project):
    assert find_spec_file() is None
    (project.parent / "clusterkit.yaml").write_text("name: outside\n")
    assert find_spec_file() is None, "the search stops at the home folder"
    (project / "proj" / "clusterkit.yaml").write_text("name: proj\n")
    assert find_spec_file() == project / "proj" / "clusterkit.yaml"
    assert resolve_spec(environ={}).name == "proj", "`up` reads the same file"


def test_name_resolution_order(project, monkeypatch):
    assert cluster.resolve_name(None) == (None, "")
    (project / "proj" / "clusterkit.yaml").write_text("name: from-file\nworkers: 2\n")
    name, source = cluster.resolve_name(None)
    assert name == "from-file" and "clusterkit.yaml" in source
    monkeypatch.setenv("CLUSTERKIT_CLUSTER", "in-container")
    assert cluster.resolve_name(None)[0] == "in-container"
    monkeypatch.setenv("CLUSTERKIT_NAME", "from-env")
    assert cluster.resolve_name(None) == ("from-env", "from $CLUSTERKIT_NAME")
    assert cluster.resolve_name("given") == ("given", "")


def test_a_spec_file_without_a_name_names_what_up_would(project):
    (project / "proj" / "clusterkit.yaml").write_text(f"backend: {BACKENDS[-1]}\n")
    assert cluster.resolve_name(None)[0] == BACKENDS[-1]


def test_a_name_no_cluster_can_have_is_refused(project):
    with pytest.raises(InvalidValue, match="name: 'Bad Name' is not valid"):
        cluster.resolve_name("Bad Name")


def test_commands_use_the_resolved_name(cli, run_dir, tmp_path):
    (tmp_path / "clusterkit.yaml").write_text("name: ck-from-file\n")
    (tmp_path / "sub").mkdir()
    env = {**NO_ENGINE, "CWD": str(tmp_path / "sub")}
    shown = cli("status", "--runtime", "local", env=env)
    assert shown.returncode == 2
    assert "no running cluster named 'ck-from-file' (the name" in shown.stderr, shown.stderr
    named = cli("status", "--runtime", "local", env={**env, "CLUSTERKIT_NAME": "ck-env"})
    assert "no running cluster named 'ck-env' (from $CLUSTERKIT_NAME" in named.stderr, named.stderr


# -- down of nothing, gc --dry-run, ls rows ----------------------------------------------


def test_down_of_nothing_exits_0_and_a_bad_name_exits_2(cli, run_dir):
    missing = cli("down", "--name", "nope", "--runtime", "local")
    assert missing.returncode == 0, missing.stderr
    assert missing.stdout.strip() == "nothing to remove: no cluster named 'nope'"
    as_json = cli("down", "--name", "nope", "--runtime", "local", "--json")
    assert json.loads(as_json.stdout) == {"removed": [], "kept": []}
    bad = cli("down", "--name", "Bad Name")
    assert bad.returncode == 2 and "name: 'Bad Name' is not valid" in bad.stderr
    both = cli("down", "--all", "--name", "x")
    assert both.returncode == 2 and "--all and --name" in both.stderr


def _abandoned_local(run_dir, name: str) -> None:
    """A local cluster whose `up` was killed before it was ready (its owner is long gone)."""
    (run_dir / name).mkdir(parents=True)
    dead = {"role": "scheduler", "node": "scheduler", "pid": 2**22 + 7, "create_time": 1.0}
    (run_dir / name / "state.json").write_text(json.dumps({"processes": [dead]}))
    records.update(name, owner={"pid": 2**22 + 7, "started": 1.0}, ready=False)


def test_gc_dry_run_lists_and_removes_nothing(cli, run_dir):
    _abandoned_local(run_dir, "ck-left")
    dry = cli("gc", "--dry-run", env=NO_ENGINE)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip() == "would remove 1 leftover resource(s): cluster ck-left (local)"
    assert (run_dir / "ck-left" / "state.json").exists(), "a dry run removes nothing"
    dry_json = cli("gc", "--dry-run", "--json", env=NO_ENGINE)
    assert json.loads(dry_json.stdout) == [{"name": "ck-left", "runtime": "local"}]
    swept = cli("gc", "--json", env=NO_ENGINE)
    assert json.loads(swept.stdout) == [{"name": "ck-left", "runtime": "local"}], swept.stderr
    assert not (run_dir / "ck-left").exists()


def test_ls_json_keys_and_empty_listing(cli, run_dir):
    row = Listed("a", BACKENDS[0], "local", 2, 1, "degraded", 0.0)
    assert row.to_dict() == {
        "name": "a",
        "backend": BACKENDS[0],
        "runtime": "local",
        "wanted": 2,
        "registered": 1,
        "health": "degraded",
        "created": "1970-01-01T00:00:00+00:00",
    }
    empty = cli("ls", "--runtime", "local", "--json")
    assert empty.returncode == 0 and json.loads(empty.stdout) == []
    assert "no cluster is running" in cli("ls", "--runtime", "local").stdout
    assert os.environ.get("CLUSTERKIT_RUN_DIR") == str(run_dir)
