"""Where clusterkit keeps its state on this machine.

One function, so records, credentials and the local runtime's state files
agree on the folder (``CLUSTERKIT_RUN_DIR`` moves all of them).

    >>> import os
    >>> os.environ["CLUSTERKIT_RUN_DIR"] = "/tmp/ck-doc"
    >>> str(run_root())
    '/tmp/ck-doc'
    >>> del os.environ["CLUSTERKIT_RUN_DIR"]
"""

from __future__ import annotations

import os
from pathlib import Path


def run_root() -> Path:
    """Where state files live: ``$CLUSTERKIT_RUN_DIR`` or ``~/.local/state/clusterkit``."""
    configured = os.environ.get("CLUSTERKIT_RUN_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "clusterkit"
