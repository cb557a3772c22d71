"""``python -m clusterkit.render [FOLDER]``: write the default specs' files (``make render``)."""

import sys
from pathlib import Path

from clusterkit.render import write_default_files

for written in write_default_files(Path(sys.argv[1] if len(sys.argv) > 1 else "compose")):
    print(f"wrote {written}")
