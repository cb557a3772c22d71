"""The interactive client inside a client container: what ``clusterkit shell`` runs.

    python -m clusterkit.shell

Connects to the cluster named by the container's environment
(:mod:`clusterkit.client_env`) and hands the user the ready objects its
backend's ``shell_namespace`` names (a ``distributed.Client`` as ``client``;
a ``SparkSession`` as ``spark`` and its context as ``sc``). On a terminal
that is IPython when the image has it (else the standard library's
console); piped input runs as a script, as
``python`` runs it, so ``echo 'print(client)' | clusterkit shell`` prints and
exits with the script's status.
"""

from __future__ import annotations

import builtins
import sys
import traceback
from typing import Any

from clusterkit import client_env
from clusterkit.backends import get_backend
from clusterkit.errors import ClusterKitError


def _interact(namespace: dict[str, Any], banner: str) -> None:
    try:
        from IPython import start_ipython
    except ImportError:
        import code

        try:
            import readline  # noqa: F401 - line editing and history for code.interact
        except ImportError:
            pass
        code.interact(banner=banner, local=namespace, exitmsg="")
        return
    print(banner)
    start_ipython(argv=["--no-banner"], user_ns=namespace)


def _script(namespace: dict[str, Any]) -> int:
    """Run piped input as ``python`` runs a script: a traceback and status 1 if it raises."""
    source = sys.stdin.read()
    try:
        exec(compile(source, "<stdin>", "exec"), namespace)  # noqa: S102 - the user's own input
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException as e:  # noqa: BLE001 - reported as python reports it
        tb = e.__traceback__.tb_next if e.__traceback__ else None  # without this frame
        traceback.print_exception(type(e), e, tb)
        return 130 if isinstance(e, KeyboardInterrupt) else 1
    return 0


def main() -> int:
    target = client_env.target()
    if target is None:
        print(
            "clusterkit.shell runs inside a client container; start it with `clusterkit shell --name NAME`",
            file=sys.stderr,
        )
        return 2
    try:
        found, banner, close = get_backend(target.backend).shell_namespace(target)
    except ClusterKitError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    namespace = {"__name__": "__main__", "__builtins__": builtins, **found}
    try:
        if sys.stdin.isatty():
            _interact(namespace, banner)
            return 0
        return _script(namespace)
    finally:
        close()


if __name__ == "__main__":
    sys.exit(main())
