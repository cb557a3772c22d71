import pytest

from clusterkit.errors import InvalidValue, SpecError, SpecFileError, UnknownBackend, UnknownKey
from clusterkit.spec import ClusterSpec, format_memory, parse_memory, resolve_spec


def test_defaults_follow_the_backend():
    dask = resolve_spec(overrides={}, environ={})
    spark = resolve_spec(overrides={"backend": "spark"}, environ={})
    assert (dask.name, dask.scheduler_port, dask.dashboard_port) == ("dask", 8786, 8787)
    assert (spark.name, spark.scheduler_port, spark.dashboard_port) == ("spark", 7077, 8080)
    assert dask.bind_address == "127.0.0.1"


def test_order_is_flag_then_environment_then_file(tmp_path):
    spec_file = tmp_path / "c.yaml"
    spec_file.write_text("backend: dask\nworkers: 5\ncores: 2\nmemory: 2g\n")
    spec = resolve_spec(spec_file, overrides={"workers": "3"}, environ={"CLUSTERKIT_CORES": "4"})
    assert spec.workers == 3  # flag beats file
    assert spec.cores == 4  # environment beats file
    assert spec.memory == 2 * 2**30  # file beats default


def test_flag_none_does_not_override(tmp_path):
    spec_file = tmp_path / "c.yaml"
    spec_file.write_text("workers: 4\n")
    assert resolve_spec(spec_file, overrides={"workers": None}, environ={}).workers == 4


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512m", 512 * 2**20),
        ("2g", 2 * 2**30),
        ("1.5GiB", int(1.5 * 2**30)),
        ("1024MB", 2**30),
        (2**30, 2**30),
    ],
)
def test_memory_sizes(text, size):
    assert parse_memory(text) == size


def test_spark_memory_format():
    assert format_memory(parse_memory("2g")) == "2048m"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("workers", 0, ["workers", "0", "1 to 256"]),
        ("workers", -3, ["workers", "-3", "1 to 256"]),
        ("workers", "many", ["workers", "'many'"]),
        ("cores", "two", ["cores", "'two'", "integer"]),
        ("memory", "lots", ["memory", "'lots'", "512m"]),
        ("memory", "1m", ["memory", "128m"]),
        ("scheduler_port", 70000, ["scheduler_port", "70000", "1 to 65535"]),
        ("dashboard_port", 0, ["dashboard_port", "0"]),
        ("bind_address", "everywhere", ["bind_address", "'everywhere'"]),
        ("name", "Bad Name!", ["name", "Bad Name!"]),
        ("env", {"1BAD": "x"}, ["env", "1BAD"]),
    ],
)
def test_invalid_values_name_field_value_and_fix(field, value, words):
    with pytest.raises(InvalidValue) as caught:
        resolve_spec(overrides={field: value}, environ={})
    for word in words:
        assert word in str(caught.value)


def test_unknown_backend_suggests():
    with pytest.raises(UnknownBackend, match=r"'sprak'.*did you mean 'spark'.*dask, spark"):
        resolve_spec(overrides={"backend": "sprak"}, environ={})


def test_same_port_twice_is_rejected():
    with pytest.raises(InvalidValue, match="different from scheduler_port"):
        resolve_spec(overrides={"scheduler_port": 9000, "dashboard_port": 9000}, environ={})


def test_missing_file(tmp_path):
    with pytest.raises(SpecFileError, match="does not exist"):
        resolve_spec(tmp_path / "nope.yaml", environ={})


def test_malformed_yaml_names_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("backend: dask\nworkers: [1, 2\n")
    with pytest.raises(SpecFileError, match=r"not valid YAML at line \d+"):
        resolve_spec(bad, environ={})


def test_yaml_that_is_not_a_mapping(tmp_path):
    bad = tmp_path / "list.yaml"
    bad.write_text("- dask\n- spark\n")
    with pytest.raises(SpecFileError, match="must be a mapping"):
        resolve_spec(bad, environ={})


def test_unknown_key_suggests(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("backend: dask\nworker: 3\n")
    with pytest.raises(UnknownKey, match=r"unknown key 'worker'; did you mean 'workers'"):
        resolve_spec(bad, environ={})


def test_yaml_is_loaded_safely(tmp_path):
    bad = tmp_path / "evil.yaml"
    bad.write_text("name: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(SpecFileError):
        resolve_spec(bad, environ={})


def test_spec_is_frozen_and_replace_revalidates():
    spec = ClusterSpec(name="x")
    with pytest.raises(AttributeError):
        spec.workers = 4  # type: ignore[misc]
    assert spec.replace(workers=4).workers == 4
    with pytest.raises(SpecError):
        spec.replace(workers=-1)


def test_round_trip_through_dict():
    spec = resolve_spec(overrides={"backend": "spark", "env": {"A": "1"}, "memory": "768m"}, environ={})
    again = resolve_spec(overrides=spec.to_dict(), environ={})
    assert again == spec


def test_a_record_reads_back_exactly_whatever_the_folder_says(tmp_path, monkeypatch):
    """A running cluster's spec is not user input: no clusterkit.yaml, no CLUSTERKIT_*, None kept."""
    spec = resolve_spec(overrides={"name": "rec", "workers": 3, "env": {"A": "1"}}, environ={})
    record = spec.to_dict()
    assert record["image"] is None
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clusterkit.yaml").write_text("image: other/image:1\nworkerz: 2\n")
    monkeypatch.setenv("CLUSTERKIT_WORKERS", "7")
    again = ClusterSpec.from_record(record)
    assert again == spec and again.image is None and again.workers == 3


def test_a_record_from_another_version_names_its_unknown_keys():
    with pytest.raises(SpecError, match="unknown keys \\['colour'\\]"):
        ClusterSpec.from_record({"name": "x", "colour": "red"})
