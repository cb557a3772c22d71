"""The options and helpers several ``clusterkit`` commands share.

The main group (:mod:`clusterkit.cli`) and the subcommand modules
(:mod:`clusterkit.cli.client`, ...) import them from here; a subcommand
module never imports the group: the group adds its commands.
"""

from __future__ import annotations

from typing import Any

import click

from clusterkit.errors import InvalidValue
from clusterkit.facts import BACKENDS
from clusterkit.spec import ClusterSpec, resolve_spec


def env_pairs(values: tuple[str, ...]) -> dict[str, str] | None:
    """``NAME=value`` items as a mapping (``None`` for none).

    >>> env_pairs(("A=1", "B=x=y"))
    {'A': '1', 'B': 'x=y'}
    """
    if not values:
        return None
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidValue(f"env: {item!r} is not valid; expected NAME=value")
        pairs[key] = value
    return pairs


class SpecInt(click.ParamType):
    """An integer (``INTEGER`` in the help, for completion); range and messages are the spec's.

    What ``int()`` reads becomes an int; anything else goes on unchanged, so
    ``--workers two``, ``--timeout 1.5`` and ``--workers 0`` meet the checks
    and the one-line messages a spec file or ``CLUSTERKIT_*`` value meets
    (``workers: 'two' is not valid; expected an integer from 1 to 256``).
    """

    name = "integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError:
            return value


class SpecChoice(click.Choice):
    """A choice (listed in the help, completed by the shell) whose refusal is the spec's message.

    A value outside the choices goes on unchanged to the spec, which names the
    choices and suggests the closest one.
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value if value not in self.choices else super().convert(value, param, ctx)


INTEGER = SpecInt()


def runtime_option(text: str = "Which runtime holds the cluster (default: search them all).") -> Any:
    from clusterkit.runtimes import RUNTIMES

    return click.option("--runtime", type=click.Choice(RUNTIMES), help=text)


def running_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion of ``--name``: the clusters this machine knows, cheaply and never failing.

    Read from the records ``up`` writes and the local runtime's state files,
    then the engine's labels if one answers at once; no engine is fine.
    """
    from click.shell_completion import CompletionItem

    names: set[str] = set()
    try:
        from clusterkit import records
        from clusterkit.paths import run_root

        names.update(p.stem for p in records.directory().glob("*.json"))
        names.update(p.parent.name for p in run_root().glob("*/state.json"))
    except OSError:
        pass
    names.update(_engine_names())
    return [CompletionItem(n) for n in sorted(names) if n.startswith(incomplete)]


def _engine_names() -> set[str]:
    try:
        import docker

        from clusterkit import labels

        client = docker.from_env(timeout=2)
        found = client.containers.list(
            filters={"label": labels.selector(role="scheduler")}, ignore_removed=True
        )
        return {c.labels.get(labels.CLUSTER, "") for c in found} - {""}
    except Exception:  # noqa: BLE001 - completion must never fail: no engine, no names from it
        return set()


def name_option() -> Any:
    return click.option(
        "--name",
        shell_complete=running_names,
        help="Cluster name (default: $CLUSTERKIT_NAME, else the name of the nearest clusterkit.yaml, "
        "else the only running cluster).",
    )


def spec_options(func: Any) -> Any:
    """The flags that override ``clusterkit.yaml``; values are validated by the spec."""
    options = [
        click.option(
            "-f",
            "--file",
            "spec_file",
            type=click.Path(dir_okay=False),
            help="Spec file (default: the nearest clusterkit.yaml, here or in a folder above).",
        ),
        click.option("--name", help="Cluster name (default: the backend's name)."),
        click.option("--backend", type=SpecChoice(BACKENDS), help=f"{' or '.join(BACKENDS)}."),
        click.option("--workers", type=INTEGER, help="Number of workers (>= 1)."),
        click.option("--cores", type=INTEGER, help="Cores (threads) per worker."),
        click.option("--memory", help="Memory per worker, e.g. 1g or 512m."),
        click.option("--scheduler-port", type=INTEGER, help="Scheduler / master port."),
        click.option("--dashboard-port", type=INTEGER, help="Dashboard / web UI port."),
        click.option("--bind", "bind_address", help="Address published ports bind to (default 127.0.0.1)."),
        click.option("--image", help="Node image (default: built from the lock)."),
        click.option("--env", "env", multiple=True, help="NAME=value for every node (repeatable)."),
        click.option(
            "--security",
            type=click.Choice(["none", "tls"]),
            help="tls: mutual TLS (Dask) or an auth secret (Spark); default tls on swarm, none elsewhere.",
        ),
        click.option("--encrypted", is_flag=True, default=None, help="Swarm: encrypt the overlay network."),
        click.option(
            "--max-replicas-per-node", type=INTEGER, help="Swarm: at most this many workers on one node."
        ),
        click.option(
            "--mount",
            "mounts",
            multiple=True,
            metavar="PATH[:ro|rw]",
            help="A host folder every node sees at the same path (repeatable; default: the project "
            "folder, read-only; `mounts: []` in the spec file shares none).",
        ),
        click.option(
            "--notebook/--no-notebook",
            default=None,
            help="JupyterLab beside the cluster, on 127.0.0.1 (`status` prints the link with its token).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def spec_from(spec_file: str | None, env: tuple[str, ...], **flags: Any) -> ClusterSpec:
    """The spec from the file, the ``CLUSTERKIT_*`` variables and the command's flags."""
    flags["env"] = env_pairs(env)
    flags["mounts"] = list(flags.get("mounts") or ()) or None
    return resolve_spec(spec_file, overrides=flags)
