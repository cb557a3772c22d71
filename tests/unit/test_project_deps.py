"""Which of a project's declared packages go onto the nodes, and where its project is found."""

from __future__ import annotations

from pathlib import Path

from clusterkit.images import project


def test_host_only_packages_and_clusterkit_itself_stay_off_the_nodes():
    text = '[project]\nname = "mine"\ndependencies = ["Humanize>=4", "docker>=7", "clusterkit[dask]", "pytest"]\n'
    assert project.declared_in_text(text) == ["Humanize>=4"]


def test_clusterkits_own_checkout_declares_nothing_for_the_nodes():
    root = Path(__file__).resolve().parents[2]
    assert project.declared(root) == []


def test_a_requirements_file_wins_and_comments_and_options_are_skipped(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["a"]\n')
    named = tmp_path / "node.txt"
    named.write_text("# nodes\n--index-url nowhere\nb==1\n\nrich\n")
    assert project.declared(tmp_path, named) == ["b==1"]
    assert project.declared(tmp_path) == ["a"]


def test_the_project_is_the_nearest_pyproject_and_never_the_home_folder(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    assert project.find_source(deep) == tmp_path / "pyproject.toml"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert project.find_source(deep) is None  # the home folder itself is not a project


def test_a_lock_is_current_only_for_the_list_it_was_made_from(tmp_path):
    lock = tmp_path / project.LOCK_NAME
    header = project._HEADER.format(inputs=project._inputs_hash("dask", ["a"]))
    lock.write_text(header + "\na==1\n")
    assert project.lock_is_current(lock, "dask", ["a"])
    assert not project.lock_is_current(lock, "dask", ["a", "b"])
    assert not project.lock_is_current(tmp_path / "missing.lock", "dask", ["a"])
