"""Client containers without an engine: the environment contract, container options, shipped code."""

from __future__ import annotations

import os
import zipfile

import pytest

from clusterkit import client_env, jobs, notebook, workdir
from clusterkit.backends import get_backend
from clusterkit.client_env import ClientPlace
from clusterkit.errors import InvalidValue
from clusterkit.spec import resolve_spec


def place(backend: str = "dask", **changes) -> ClientPlace:
    fields = {
        "cluster": "c1",
        "backend": backend,
        "image": "sha256:abc",
        "network": "clusterkit-c1",
        "scheduler_host": "scheduler",
        "scheduler_port": 8786 if backend == "dask" else 7077,
        "dashboard_port": 8787 if backend == "dask" else 8080,
        "labels": {"clusterkit.project": "clusterkit", "clusterkit.cluster": "c1"},
        "dashboard_link": "http://127.0.0.1:9999/status",
        **changes,
    }
    return ClientPlace(**fields)


def environment(where: ClientPlace) -> dict[str, str]:
    return get_backend(where.backend).client_environment(where)


def test_dask_environment_names_the_scheduler_and_reads_back():
    env = environment(place(env={"MY_SETTING": "1"}))
    assert env["DASK_SCHEDULER_ADDRESS"] == "tcp://scheduler:8786"
    assert env["CLUSTERKIT_DASHBOARD_URL"] == "http://scheduler:8787"
    assert env["DASK_DISTRIBUTED__DASHBOARD__LINK"] == "http://127.0.0.1:9999/status"
    assert env["MY_SETTING"] == "1", "clients get the spec's env as the nodes do"
    assert "clusterkit.workdir" in env["DASK_DISTRIBUTED__CLIENT__PRELOAD"]
    here = client_env.target(env)
    assert (here.cluster, here.backend, here.address, here.secured) == (
        "c1",
        "dask",
        env[client_env.DASK_ADDRESS],
        False,
    )
    assert here.dashboard_port == 8787


def test_spark_environment_and_secured_clusters():
    env = environment(place("spark", secured=True))
    assert env["SPARK_MASTER"] == "spark://scheduler:7077"
    here = client_env.target(env)
    assert here.backend == "spark" and here.secured
    assert here.spark_secret_file.startswith(client_env.CREDENTIALS_DIR)
    tls = environment(place(secured=True))
    assert tls["DASK_SCHEDULER_ADDRESS"].startswith("tls://")
    assert tls["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"].startswith(client_env.CREDENTIALS_DIR)
    assert client_env.target(tls).secured


def test_each_backend_names_the_credential_files_its_clients_mount():
    from clusterkit import security

    assert get_backend("dask").credential_files() == (security.CA, security.CLIENT_CERT, security.CLIENT_KEY)
    assert get_backend("spark").credential_files() == (security.SPARK_SECRET,)
    secured = environment(place("spark", secured=True))
    assert secured[client_env.SPARK_SECRET_FILE].endswith("/" + security.SPARK_SECRET)


def test_outside_a_client_container_there_is_no_target():
    assert client_env.target({}) is None
    assert client_env.target({"DASK_SCHEDULER_ADDRESS": "tcp://x:1"}) is None, "not without the cluster name"


def test_container_options_map_the_caller_and_keep_the_container_small():
    options = jobs.container_options(
        place(),
        ["python", "job.py"],
        role=jobs.JOB,
        name="n",
        user=(4321, 4321),
        mounts=[jobs.Mount("/home/me/project", client_env.WORKDIR)],
        env={"EXTRA": "x"},
    )
    assert options["user"] == "4321:4321"
    assert options["environment"]["HOME"] == "/tmp", "the image's home belongs to uid 1000"
    assert options["environment"]["EXTRA"] == "x"
    assert options["labels"]["clusterkit.cluster"] == "c1" and options["labels"]["clusterkit.role"] == "job"
    assert options["network"] == "clusterkit-c1" and options["image"] == "sha256:abc"
    assert options["cap_drop"] == ["ALL"] and "no-new-privileges" in options["security_opt"]
    (mount,) = options["mounts"]
    assert (mount["Source"], mount["Target"], mount["ReadOnly"]) == ("/home/me/project", "/work", True)
    assert "ports" not in options, "a job publishes nothing"
    image_user = jobs.container_options(place(), ["true"], role=jobs.JOB, name="n", user=(1000, 1000))
    assert "HOME" not in image_user["environment"]


def test_a_job_runs_as_its_caller_and_the_notebook_never_as_root():
    assert jobs.caller_user() == (os.getuid(), os.getgid()), "root too: it reads its own 0700 home"
    assert jobs.client_user()[0] != 0, "JupyterLab refuses to run as root"
    groups = jobs.caller_groups()
    assert os.getgid() not in groups
    assert groups == () if os.getuid() == 0 else set(groups) <= set(os.getgroups())


def test_every_client_container_runs_without_capabilities():
    for user in ((0, 0), (4321, 4321)):
        options = jobs.container_options(place(), ["true"], role=jobs.JOB, name="n", user=user, groups=(27,))
        assert options["user"] == f"{user[0]}:{user[1]}"
        assert options["cap_drop"] == ["ALL"] and options["security_opt"] == ["no-new-privileges"]
        assert options["group_add"] == ["27"]
        assert options["environment"]["HOME"] == "/tmp", "the image's home is not the caller's"
    assert "group_add" not in jobs.container_options(place(), ["true"], role=jobs.JOB, name="n", user=(0, 0))


def test_output_folder_is_mounted_at_its_own_path(tmp_path):
    host, target = jobs._output_mount(tmp_path, tmp_path / "results")
    assert (host, target) == (tmp_path / "results", str(tmp_path / "results")) and host.is_dir()
    outside = tmp_path.parent / f"{tmp_path.name}-out"
    assert jobs._output_mount(tmp_path, outside)[1] == str(outside)
    with pytest.raises(InvalidValue, match="read-only"):
        jobs._output_mount(tmp_path, tmp_path)


def test_workdir_archive_holds_the_programs_modules_only(tmp_path):
    (tmp_path / "job.py").write_text("import helper\n")
    (tmp_path / "helper.py").write_text("X = 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "data.csv").write_text("a,b\n")
    for skipped in (".git", "__pycache__", "venv"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "x.py").write_text("")
    (tmp_path / "venv" / "pyvenv.cfg").write_text("")
    filename, data, names = workdir.archive(str(tmp_path))
    assert filename.startswith(workdir.NAME) and filename.endswith(".zip")
    assert names == ["helper", "job", "pkg"]
    path = tmp_path / filename
    path.write_bytes(data)
    assert sorted(zipfile.ZipFile(path).namelist()) == ["helper.py", "job.py", "pkg/__init__.py"]
    (tmp_path / "helper.py").write_text("X = 2\n")
    assert workdir.archive(str(tmp_path))[0] != filename, "a new version is a new file on the nodes"
    assert workdir.archive(str(tmp_path / "pkg" / "..")) is not None
    (tmp_path / "empty").mkdir()
    assert workdir.archive(str(tmp_path / "empty")) is None


def test_installing_the_workdir_forgets_modules_of_an_earlier_job(tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "ck_unit_helper.py").write_text("VALUE = 1\n")
    filename, data, names = workdir.archive(str(tmp_path / "src"))
    workdir._install(str(tmp_path), filename, data, names)
    import ck_unit_helper

    assert ck_unit_helper.VALUE == 1
    (tmp_path / "src" / "ck_unit_helper.py").write_text("VALUE = 2\n")
    workdir._install(str(tmp_path), *workdir.archive(str(tmp_path / "src")))
    import ck_unit_helper as again

    assert again.VALUE == 2
    sys.modules.pop("ck_unit_helper", None)


def test_the_notebook_is_a_spec_field():
    assert resolve_spec(overrides={"notebook": "true"}, environ={}).notebook is True
    assert resolve_spec(environ={"CLUSTERKIT_NOTEBOOK": "1"}).notebook is True
    assert resolve_spec(environ={}).notebook is False
    with pytest.raises(InvalidValue, match="notebook"):
        resolve_spec(overrides={"notebook": "maybe"}, environ={})


def test_the_notebook_server_never_phones_home_and_serves_the_working_folder():
    argv = notebook.serve_argv("/tmp/settings")
    assert "--ServerApp.root_dir=/work" in argv
    assert "--LabApp.app_settings_dir=/tmp/settings" in argv
    assert "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate" in argv
    assert not any("token" in a.lower() for a in argv), "the token comes from the environment, not argv"


def test_a_folder_the_container_user_cannot_read_is_refused(tmp_path):
    from clusterkit.errors import ClientStartError

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    owner = private.stat().st_uid
    jobs.check_readable(private, (owner, 0))  # the owner itself may
    with pytest.raises(ClientStartError, match="cannot read"):
        jobs.check_readable(private, (owner + 1, 4242))
    private.chmod(0o755)
    jobs.check_readable(private, (owner + 1, 4242))


def test_only_the_owner_group_and_other_bits_decide_even_for_root(tmp_path):
    """The container has no CAP_DAC_OVERRIDE: a root job cannot read a folder root does not own."""
    from clusterkit.errors import ClientStartError

    folder = tmp_path / "shared"
    folder.mkdir()
    info = folder.stat()
    stranger = info.st_uid + 1
    folder.chmod(0o750)
    with pytest.raises(ClientStartError, match="cannot read"):
        jobs.check_readable(folder, (stranger, info.st_gid + 1))
    jobs.check_readable(folder, (stranger, info.st_gid + 1), groups=(info.st_gid,))  # a supplementary group
    folder.chmod(0o075)
    with pytest.raises(ClientStartError, match="cannot read"):  # the owner's own bits apply, not the group's
        jobs.check_readable(folder, (info.st_uid, info.st_gid))
    folder.chmod(0o700)
    if os.getuid() == 0:
        os.chown(folder, 4242, 4242)  # a user's private folder, which root on the host could read
    if folder.stat().st_uid != 0:
        with pytest.raises(ClientStartError, match="root without capabilities"):
            jobs.check_readable(folder, (0, 0))


def test_an_output_folder_the_container_user_cannot_write_is_refused(tmp_path):
    from clusterkit.errors import ClientStartError

    out = tmp_path / "out"
    out.mkdir(mode=0o755)
    info = out.stat()
    jobs.check_readable(out, (info.st_uid, info.st_gid), write=True)
    with pytest.raises(ClientStartError, match="cannot write"):
        jobs.check_readable(out, (info.st_uid + 1, info.st_gid + 1), write=True)
    out.chmod(0o555)
    with pytest.raises(ClientStartError, match="cannot write"):
        jobs.check_readable(out, (info.st_uid, info.st_gid), write=True)
