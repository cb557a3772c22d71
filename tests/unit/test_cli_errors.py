"""Bad input through the real command: one line, exit 2, nothing started."""

import pytest

BAD = [
    (["--backend", "ray"], "backend: 'ray' is not a known backend"),
    (["--workers", "0"], "workers: 0 is not valid"),
    (["--workers", "-3"], "workers: -3 is not valid"),
    (["--cores", "two"], "cores: 'two' is not valid"),
    (["--memory", "lots"], "memory: 'lots' is not valid"),
    (["--scheduler-port", "70000"], "scheduler_port: 70000 is not valid"),
    (["--file", "does-not-exist.yaml"], "does not exist"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_exits_2_with_one_line(cli, run_dir, args, message):
    result = cli("up", "--runtime", "local", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (run_dir.exists() and any(run_dir.iterdir())), "something was started"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("backend: dask\nworkers: [1\n", "not valid YAML at line"),
        ("backend: dask\nwrokers: 2\n", "unknown key 'wrokers'"),
    ],
)
def test_bad_yaml(cli, run_dir, tmp_path, content, message):
    spec = tmp_path / "clusterkit.yaml"
    spec.write_text(content)
    result = cli("up", "--runtime", "local", "--file", str(spec))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_debug_shows_traceback(cli, run_dir):
    result = cli("--debug", "up", "--runtime", "local", "--workers", "0")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_status_of_missing_cluster(cli, run_dir):
    result = cli("status", "--name", "nothere", "--runtime", "local")
    assert result.returncode == 2
    assert "no running cluster named 'nothere'" in result.stderr


def test_render_merges_file_and_flags(cli, tmp_path):
    spec = tmp_path / "c.yaml"
    spec.write_text("backend: spark\nworkers: 3\n")
    result = cli("render", "--format", "spec", "--file", str(spec), "--workers", "4")
    assert result.returncode == 0, result.stderr
    assert (
        "backend: spark" in result.stdout
        and "workers: 4" in result.stdout
        and "scheduler_port: 7077" in result.stdout
    )


def test_a_notebook_needs_a_runtime_of_containers(cli, run_dir):
    """Refused before anything is built or started: the local runtime runs no client containers."""
    result = cli("up", "--runtime", "local", "--notebook")
    assert result.returncode == 1, result.stderr
    assert "a notebook runs in a container beside the cluster; the local runtime has none" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (run_dir.exists() and any(run_dir.iterdir())), "something was started"


def test_run_refuses_bad_env_before_looking_for_the_cluster(cli, run_dir):
    result = cli("run", "--runtime", "local", "--env", "NOVALUE", "--", "true")
    assert result.returncode == 2
    assert "env: 'NOVALUE' is not valid; expected NAME=value" in result.stderr
