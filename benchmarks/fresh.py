"""P7: how long a new user waits for ``make up`` on a fresh machine of this kind (Dask P7a, Spark P7b).

    .venv/bin/python -m benchmarks.fresh [--backend dask|spark|both] [--dry-run] [--keep-clone] [--force]

Goals: ``make up`` (Dask) <= 4 min (P7a); ``make up BACKEND=spark`` <= 7 min (P7b).

For each backend, nothing the machine already made for clusterkit is reused:

* the committed HEAD is cloned (``git clone --no-local``) into a temporary folder, so no venv,
  no bytecode and no cache of the working tree (nor its uncommitted changes) is used;
* every clusterkit image is removed from the engine: each tag under ``clusterkit/`` (node
  images, their ``-env`` venv stages, the bases, notebook layers) and each untagged image
  labelled ``clusterkit.project=clusterkit``. A labelled image with names outside
  ``clusterkit/`` (a user's image built FROM a clusterkit image) keeps those names, which are
  someone else's (it is listed as left alone), and every other image is not touched;
* ``make up`` runs with ``PIP_CACHE_DIR``, ``CLUSTERKIT_CACHE_DIR`` (wheelhouse, build logs)
  and ``XDG_CACHE_HOME`` pointed at new empty folders, and ``CLUSTERKIT_RUN_DIR`` (the kit's
  records) too; the user's own ``~/.cache`` is not touched. ``CLUSTERKIT_*``, ``BASE_IMAGE*``,
  ``VIRTUAL_ENV`` and make's variables of this shell are not passed on (a new user has none).

Not removed: mmdebstrap (``make tools`` installs it once; it is not uninstalled), Python 3.11,
docker and the compose tool, the engine's other images, and the network and mirrors the
downloads come through. ``make up BACKEND=<b> NAME=ck-fresh-<b> WORKERS=2`` is timed from its
start until it returns (it returns when the cluster is ready and its status is printed); its
output, timestamped line by line, goes to ``fresh-logs/<code>.log`` and gives the breakdown
(venv, wheelhouse, base image, node image, cluster up, other). ``make down`` always follows.
Results: ``fresh.json`` (merged: a Dask-only run keeps an earlier Spark figure) and the P7
section of ``RESULTS.md``.

The run removes every clusterkit image from the engine (and takes ~10 min of both cores):
it refuses (exit 2) while any container labelled ``clusterkit.project=clusterkit`` exists,
unless ``--force``. ``--dry-run`` shows what would be removed and run, and changes nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MARKERS = ("<!-- fresh start -->", "<!-- fresh end -->")
PROJECT_KEY, PROJECT_VALUE = "clusterkit.project", "clusterkit"
LABEL = f"{PROJECT_KEY}={PROJECT_VALUE}"
#: Every clusterkit image ref is ``clusterkit/<name>:<tag>`` (clusterkit.images.tags.REPO).
REPO_PREFIX = "clusterkit/"
#: backend -> (goal code, goal in seconds)
GOALS = {"dask": ("P7a", 240.0), "spark": ("P7b", 420.0)}
WORKERS = 2
#: The steps of the breakdown, in order; "other" is the rest of the total.
STEPS = ("venv", "wheelhouse", "base image", "node image", "cluster up", "other")
OTHER_WHAT = "make, the docker/mmdebstrap checks, CLI start-ups and tag checks between the steps"
#: Folders made empty for each run, and the variable that points there.
CACHE_VARS = {
    "pip-cache": "PIP_CACHE_DIR",
    "clusterkit-cache": "CLUSTERKIT_CACHE_DIR",
    "xdg-cache": "XDG_CACHE_HOME",
    "state": "CLUSTERKIT_RUN_DIR",
}
#: Variables of this shell a new user would not have (besides every CLUSTERKIT_*).
DROPPED_VARS = frozenset(
    {
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "PYTHONHOME",
        "BASE_IMAGE",
        "BASE_IMAGE_JRE",
        "MAKEFLAGS",
        "MFLAGS",
        "MAKELEVEL",
        "MAKEFILES",
    }
)
#: Exit codes: a step failed; refused or could not start; interrupted (128 + the signal).
FAILED, REFUSED = 1, 2

# Lines of `make up`'s output (stdout and stderr together) that mark its steps.
VENV_DONE = re.compile(r"^touch \S*\.venv/bin/\.installed\s*$")
BUILT = re.compile(r"^clusterkit: built (\S+) in (\d+(?:\.\d+)?)s\s*$")
WHEELS_START = re.compile(r"^clusterkit: downloading \d+ wheels")
BUILD_START = re.compile(r"^clusterkit: building (\S+)")
UP_COMMAND = re.compile(r"^\S*\.venv/bin/clusterkit up\b")
UP_EVENT = re.compile(r"^clusterkit: preparing \S+ cluster ")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Failure(Exception):
    """A step of the bench failed: ``step`` names it, ``log`` is where its output is."""

    def __init__(self, step: str, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.step, self.log = step, log


# --- pure helpers: image selection ------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """One image on the engine: its ID, its ``repo:tag`` refs and its labels."""

    id: str
    tags: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Removal:
    """What to remove: refs by name (children first), untagged images by ID; and what is left alone."""

    tags: list[str]
    ids: list[str]
    kept: list[Image]


def is_ours(ref: str) -> bool:
    """A ref in clusterkit's repository (``clusterkit/<name>:<tag>``)."""
    return ref.startswith(REPO_PREFIX)


def labelled(image: Image) -> bool:
    return image.labels.get(PROJECT_KEY) == PROJECT_VALUE


def tag_order(ref: str) -> tuple[int, str]:
    """Children before parents: notebook layers, node images, venv stages, bases."""
    name = ref[len(REPO_PREFIX) :].rpartition(":")[0] if is_ours(ref) else ref
    if name.endswith("-notebook"):
        rank = 0
    elif name.startswith("base"):
        rank = 3
    elif name.endswith("-env"):
        rank = 2
    else:
        rank = 1
    return rank, ref


def plan_removal(images: Iterable[Image]) -> Removal:
    """Every ``clusterkit/`` tag, and every untagged image labelled clusterkit.project=clusterkit.

    A labelled image with tags outside ``clusterkit/`` (a user's image built FROM a clusterkit
    image) keeps those names, which belong to someone else: it loses only its ``clusterkit/``
    tags and is listed in ``kept``.
    """
    tags: set[str] = set()
    ids: list[str] = []
    kept: list[Image] = []
    for image in images:
        ours = [t for t in image.tags if is_ours(t)]
        others = [t for t in image.tags if not is_ours(t)]
        tags.update(ours)
        if labelled(image) and not image.tags and image.id not in ids:
            ids.append(image.id)
        elif labelled(image) and others:
            kept.append(image)
    return Removal(sorted(tags, key=tag_order), ids, kept)


def images_from_inspect(data: Sequence[Mapping[str, Any]]) -> list[Image]:
    """Images from ``docker image inspect`` JSON (``<none>:<none>`` is no tag)."""
    found: dict[str, Image] = {}
    for item in data:
        tags = tuple(t for t in item.get("RepoTags") or () if t and not t.startswith("<none>"))
        labels = ((item.get("Config") or {}).get("Labels")) or {}
        found[item["Id"]] = Image(item["Id"], tags, dict(labels))
    return list(found.values())


def short_id(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


# --- pure helpers: `make up` output -> steps ---------------------------------------------------

Line = tuple[float, str]  # (seconds since `make up` started, the line)


def built_kind(what: str, backend: str) -> str | None:
    """The step a ``built <what> in N.Ns`` line closes, or None (another backend's or a notebook's)."""
    if what.startswith("wheelhouse-"):
        return "wheelhouse"
    repo = what.rpartition(":")[0]
    if repo in (f"{REPO_PREFIX}base", f"{REPO_PREFIX}base-jre"):
        return "base image"
    if repo == f"{REPO_PREFIX}{backend}":
        return "node image"
    return None


def parse_steps(lines: Sequence[Line], total: float, backend: str) -> dict[str, float]:
    """Seconds per step of a ``make up`` run, from its timestamped output.

    venv: from the start to make's ``touch .venv/bin/.installed``; wheelhouse, base image and
    node image: clusterkit's ``built X in N.Ns`` lines; cluster up: from make starting ``clusterkit
    up`` (else its first event) to the return; other: the rest of ``total``. Steps that did not
    happen are left out (a venv that already existed), except ``other``.
    """
    steps: dict[str, float] = {}
    up_at: float | None = None
    for at, text in lines:
        if "venv" not in steps and VENV_DONE.match(text):
            steps["venv"] = at
        m = BUILT.match(text)
        if m:
            kind = built_kind(m.group(1), backend)
            if kind:
                steps[kind] = steps.get(kind, 0.0) + float(m.group(2))
        if up_at is None and UP_COMMAND.match(text):
            up_at = at
    if up_at is None:
        up_at = next((at for at, text in lines if UP_EVENT.match(text)), None)
    if up_at is not None:
        steps["cluster up"] = max(0.0, total - up_at)
    ordered = {k: round(steps[k], 1) for k in STEPS if k in steps}
    ordered["other"] = round(max(0.0, total - sum(steps.values())), 1)
    return ordered


def failing_step(lines: Sequence[Line], backend: str) -> str:
    """The step ``make up`` was in when its output ended."""
    step = "venv"
    for _, text in lines:
        if VENV_DONE.match(text):
            step = "checks (docker, mmdebstrap)"
        elif WHEELS_START.match(text):
            step = "wheelhouse"
        elif m := BUILD_START.match(text):
            step = built_kind(m.group(1), backend) or f"building {m.group(1)}"
        elif UP_COMMAND.match(text) or UP_EVENT.match(text):
            step = "cluster up"
    return step


def error_line(lines: Sequence[Line]) -> str:
    """The line that best says why ``make up`` failed."""
    texts = [text.strip() for _, text in lines if text.strip()]
    for pick in (lambda t: t.startswith("error:"), lambda t: t.startswith("make: ***")):
        found = [t for t in texts if pick(t)]
        if found:
            return found[-1]
    return texts[-1] if texts else "(no output)"


# --- pure helpers: environment, results, text ---------------------------------------------------


def fresh_env(
    environ: Mapping[str, str], folders: Mapping[str, str], venv_bins: Iterable[str]
) -> dict[str, str]:
    """The environment of the timed ``make``: this one without what a new user would not have.

    ``folders`` maps each variable of CACHE_VARS to its new empty folder; ``venv_bins`` are
    folders to take off PATH (an activated venv of the working tree).
    """
    drop_paths = {os.path.normpath(p) for p in venv_bins}
    env = {k: v for k, v in environ.items() if not k.startswith("CLUSTERKIT_") and k not in DROPPED_VARS}
    if "PATH" in env:
        env["PATH"] = os.pathsep.join(
            p for p in env["PATH"].split(os.pathsep) if p and os.path.normpath(p) not in drop_paths
        )
    env.update(folders)
    env["PYTHONUNBUFFERED"] = "1"  # progress lines arrive when they are printed, to be timed
    return env


def merge_results(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """``new`` with the runs of ``old`` it did not measure (a Dask-only run keeps the Spark figure)."""
    runs = dict((old or {}).get("runs") or {})
    runs.update(new.get("runs") or {})
    return {**new, "runs": {k: runs[k] for k in sorted(runs)}}


def met_text(run: Mapping[str, Any]) -> str:
    return "yes" if run["seconds"] <= run["goal_seconds"] else "**NO**"


def table_lines(code: str, run: Mapping[str, Any]) -> list[str]:
    """The console table of one run: step, seconds."""
    width = max(len(s) for s in (*run["steps"], "total (make up)"))
    lines = [
        f"{code}: `make up` ({run['backend']}) on a fresh machine: {run['seconds']:.1f} s "
        f"(goal <= {run['goal_seconds']:.0f} s: {met_text(run).strip('*').lower()})",
        f"  {'step':<{width}}  seconds",
    ]
    lines += [f"  {step:<{width}}  {seconds:7.1f}" for step, seconds in run["steps"].items()]
    lines.append(f"  {'total (make up)':<{width}}  {run['seconds']:7.1f}")
    return lines


def section(results: Mapping[str, Any]) -> str:
    """The P7 section of RESULTS.md, between MARKERS, from the (merged) results."""
    runs = results["runs"]
    codes = sorted(runs)
    lines = [
        MARKERS[0],
        "## P7: `make up` on a fresh machine (what a new user waits for)",
        "",
        f"- Command: `{results['command']}`",
        f"- Date: {results['date']}",
        f"- Machine: {results['machine']}",
        "",
        "| goal | command | measured | met? | date | commit |",
        "|---|---|---|---|---|---|",
    ]
    for code in codes:
        run = runs[code]
        goal = f"{code}: <= {run['goal_seconds'] / 60:.0f} min"
        lines.append(
            f"| {goal} | `{run['command']}` | {run['seconds']:.1f} s ({run['seconds'] / 60:.1f} min) "
            f"| {met_text(run)} | {run['date']} | {run.get('commit', '?')} |"
        )
    steps = [s for s in STEPS if any(s in runs[c]["steps"] for c in codes)]
    lines += [
        "",
        "| step | " + " | ".join(f"{c} ({runs[c]['backend']})" for c in codes) + " |",
        "|---|" + "---|" * len(codes),
    ]
    for step in steps:
        cells = [f"{runs[c]['steps'][step]:.1f} s" if step in runs[c]["steps"] else "" for c in codes]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    lines.append("| **total** | " + " | ".join(f"**{runs[c]['seconds']:.1f} s**" for c in codes) + " |")
    lines += [
        "",
        "Each run: a `git clone --no-local` of the committed HEAD into a new temporary folder (no venv, "
        "cache or uncommitted change of the working tree is used); every clusterkit image removed "
        "from the engine first (each tag under `clusterkit/` and each untagged image labelled "
        "`clusterkit.project=clusterkit`; other images are left alone); `PIP_CACHE_DIR`, "
        "`CLUSTERKIT_CACHE_DIR`, `XDG_CACHE_HOME` and `CLUSTERKIT_RUN_DIR` pointed at new empty "
        "folders, removed afterwards. The time runs from the start of `make up` until it returns "
        "with the cluster ready and its status printed; `make down` follows. Steps: venv, from the "
        "start to make's `touch .venv/bin/.installed`; wheelhouse, base image and node image, "
        "clusterkit's `built ... in N s` lines; cluster up, from make starting `clusterkit up` to "
        f"the return; other: {OTHER_WHAT}.",
        "",
        "Not removed (installed once per machine): mmdebstrap (`make tools` installs it; not "
        "uninstalled), Python 3.11, docker and the compose tool; the downloads (Python packages, "
        "Debian packages) come through this machine's network and mirrors. The figures include "
        "whatever else ran on the machine at the time (load averages in `fresh.json`). Raw "
        "numbers and the logs: [fresh.json](fresh.json).",
        MARKERS[1],
    ]
    return "\n".join(lines)


def shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# --- the engine, git, make ----------------------------------------------------------------------


def sh(argv: Sequence[str], *, check: bool = True, timeout: float = 120, **kwargs: Any) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"`{shlex.join(argv)}` failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout.strip()


def engine_images() -> list[Image]:
    """Every top-level image on the engine (tagged or dangling), with tags and labels."""
    ids = list(dict.fromkeys(sh(["docker", "image", "ls", "-q", "--no-trunc"]).split()))
    if not ids:
        return []
    # An image removed between the two calls makes inspect fail for it alone; keep the rest.
    result = subprocess.run(["docker", "image", "inspect", *ids], capture_output=True, text=True, timeout=120)
    if not result.stdout.strip().startswith("["):
        raise RuntimeError(f"`docker image inspect` failed: {result.stderr.strip()}")
    return images_from_inspect(json.loads(result.stdout))


def labelled_containers(extra: Sequence[str] = ()) -> list[str]:
    """``name (image, status)`` of every container (running or not) with the project label."""
    argv = ["docker", "ps", "-a", "--filter", f"label={LABEL}", *extra]
    out = sh([*argv, "--format", "{{.Names}} ({{.Image}}, {{.Status}})"])
    return [line for line in out.splitlines() if line.strip()]


def removal_commands(plan: Removal) -> list[list[str]]:
    return [["docker", "image", "rm", "--force", ref] for ref in plan.tags] + [
        ["docker", "image", "rm", image_id] for image_id in plan.ids
    ]


def describe_plan(plan: Removal) -> list[str]:
    lines = [f"  $ {shlex.join(argv)}" for argv in removal_commands(plan)] or [
        "  (no clusterkit image on the engine)"
    ]
    for image in plan.kept:
        lines.append(
            f"  left alone: {short_id(image.id)} {', '.join(image.tags)} (labelled {LABEL}, but tagged "
            "outside clusterkit/)"
        )
    return lines


def remove_images() -> list[str]:
    """Remove every clusterkit image (see plan_removal); returns what was removed.

    Raises a Failure if a ``clusterkit/`` tag is still there afterwards (the run would not be
    fresh); untagged labelled images that cannot go (a container or a kept image uses them) are
    reported.
    """
    removed: list[str] = []
    plan = plan_removal(engine_images())
    for argv in removal_commands(Removal(plan.tags, [], [])):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        if result.returncode == 0:
            removed.append(argv[-1])
        elif "No such image" not in result.stderr:
            say(f"could not remove {argv[-1]}: {result.stderr.strip()}")
    # Removing the tags took their untagged parents with them; what is left untagged goes by ID.
    for image_id in plan_removal(engine_images()).ids:
        result = subprocess.run(
            ["docker", "image", "rm", image_id], capture_output=True, text=True, timeout=300
        )
        if result.returncode == 0:
            removed.append(short_id(image_id))
        elif "No such image" not in result.stderr:
            say(f"left untagged image {short_id(image_id)}: {result.stderr.strip()}")
    after = plan_removal(engine_images())
    for image in after.kept:
        say(
            f"left alone: {short_id(image.id)} {', '.join(image.tags)} (labelled, tagged outside clusterkit/)"
        )
    if after.tags:
        raise Failure("removing images", f"still on the engine: {', '.join(after.tags)}")
    return removed


def clone(dest: Path) -> str:
    """A clone of the committed HEAD at ``dest``; returns its short commit."""
    sh(["git", "clone", "--no-local", "--quiet", str(ROOT), str(dest)], timeout=600)
    return sh(["git", "-C", str(dest), "rev-parse", "--short", "HEAD"])


def uncommitted() -> list[str]:
    """Paths with changes in the working tree (read only: no index refresh is written)."""
    out = sh(["git", "--no-optional-locks", "-C", str(ROOT), "status", "--porcelain"], check=False)
    return [line[3:] for line in out.splitlines() if line.strip()]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def stop_group(proc: subprocess.Popen, grace: float = 120) -> None:
    """Ctrl-C to ``make`` and everything it started (its own process group), then SIGKILL.

    ``make up`` gets ``grace`` seconds to clean up after itself (``clusterkit up`` removes what
    it started); then whatever of that group is left (make, or a child that ignored SIGINT) is
    killed. The detached supervisor ``clusterkit up`` starts has its own session: not touched.
    """
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + 5
    while _signal_group(proc.pid, 0) and time.monotonic() < deadline:
        time.sleep(0.2)  # the rest of the group ending after make
    if _signal_group(proc.pid, signal.SIGKILL):
        say(f"killed what was left of process group {proc.pid}")
    proc.wait()


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the process group; False if it has no process left."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def run_timed(
    argv: list[str], cwd: Path, env: Mapping[str, str], log_path: Path, tag: str, lines: list[Line]
) -> tuple[int, float]:
    """Run ``argv`` (make), each output line timestamped into ``lines``, ``log_path`` and stderr.

    Returns (exit code, seconds from start until it returned). The command runs in its own
    process group: an interrupt here is passed on to it, and it is stopped before this returns.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        log.write(
            f"# cd {cwd} && {shlex.join(argv)}\n# (environment: {', '.join(f'{v}={env[v]}' for v in CACHE_VARS.values())})\n"
        )
        log.flush()
        t0 = time.monotonic()
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                at = time.monotonic() - t0
                text = raw.decode(errors="replace").rstrip("\r\n")
                lines.append((at, text))
                log.write(f"[{at:8.2f}s] {text}\n")
                log.flush()
                print(f"  {tag} {at:7.1f}s | {text}", file=sys.stderr, flush=True)
            code = proc.wait()
            total = time.monotonic() - t0
        except BaseException:
            hold_signals()  # stopping make is not itself interrupted
            log.write(f"[{time.monotonic() - t0:8.2f}s] (interrupted: stopping make)\n")
            stop_group(proc)
            raise
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
        log.write(f"[{total:8.2f}s] (make exited with {code})\n")
    return code, total


def force_remove(name: str, state: Path) -> None:
    """Last resort when ``make down`` failed: the cluster's supervisor, containers and networks."""
    from clusterkit import records

    try:
        found = json.loads((state / ".records" / f"{name}.json").read_text()).get("supervisor") or {}
        pid, started = int(found.get("pid") or 0), found.get("started")
        # The detached supervisor this run's `clusterkit up` started, if that PID is still it.
        if pid and records.alive(pid, started):
            os.kill(pid, signal.SIGTERM)
            say(f"stopped the supervisor of {name} (pid {pid})")
    except (OSError, ValueError, TypeError):
        pass
    selector = f"label=clusterkit.cluster={name}"
    ids = sh(["docker", "ps", "-aq", "--filter", selector], check=False).split()
    if ids:
        sh(["docker", "rm", "-f", *ids], check=False)
    nets = sh(["docker", "network", "ls", "-q", "--filter", selector], check=False).split()
    if nets:
        sh(["docker", "network", "rm", *nets], check=False)
    say(f"removed {len(ids)} container(s) and {len(nets)} network(s) of {name} by label")


# --- one measurement ----------------------------------------------------------------------------


@dataclass
class Run:
    """One backend's measurement: its folders, names and commands."""

    backend: str
    tmp: Path
    logs: Path
    code: str = ""
    name: str = ""
    #: What the run is doing now (for the message when it fails or is interrupted).
    phase: str = "starting"
    #: The timestamped output of `make up` so far.
    lines: list[Line] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.code = GOALS[self.backend][0]
        self.name = f"ck-fresh-{self.backend}"

    @property
    def home(self) -> Path:
        return self.tmp / self.code

    @property
    def repo(self) -> Path:
        return self.home / "repo"

    @property
    def folders(self) -> dict[str, str]:
        return {var: str(self.home / folder) for folder, var in CACHE_VARS.items()}

    @property
    def log(self) -> Path:
        return self.logs / f"{self.code}.log"

    @property
    def build_logs(self) -> Path:
        return self.logs / f"{self.code}-build-logs"

    def up_argv(self) -> list[str]:
        return ["make", "up", f"BACKEND={self.backend}", f"NAME={self.name}", f"WORKERS={WORKERS}"]

    def down_argv(self) -> list[str]:
        return ["make", "down", f"BACKEND={self.backend}", f"NAME={self.name}"]

    def env(self) -> dict[str, str]:
        bins = [str(ROOT / ".venv" / "bin")]
        if os.environ.get("VIRTUAL_ENV"):
            bins.append(str(Path(os.environ["VIRTUAL_ENV"]) / "bin"))
        return fresh_env(os.environ, self.folders, bins)

    def plan_text(self, images: list[str], keep_clone: bool) -> list[str]:
        folders = " ".join(shlex.quote(p) for p in self.folders.values())
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.folders.items())
        return [
            f"{self.code} ({self.backend}, goal <= {GOALS[self.backend][1]:.0f} s):",
            f"  $ git clone --no-local --quiet {ROOT} {self.repo}",
            *images,
            f"  $ mkdir -p {folders}",
            f"  $ cd {self.repo} && env {env} PYTHONUNBUFFERED=1 {shlex.join(self.up_argv())}   # timed; "
            f"log {shown(self.log)}",
            f"  $ {shlex.join(self.down_argv())}   # always, same folder and environment",
            f"  $ cp -r {self.folders['CLUSTERKIT_CACHE_DIR']}/logs {shown(self.build_logs)}",
            f"  $ rm -rf {self.home}"
            + ("   # but the clone, kept at " + str(self.repo) if keep_clone else ""),
        ]


def make_down(run: Run) -> None:
    """``make down`` in the clone (if its venv was made: without one no cluster was started)."""
    if not (run.repo / ".venv" / "bin" / ".installed").exists():
        if labelled_containers(["--filter", f"label=clusterkit.cluster={run.name}"]):
            force_remove(run.name, Path(run.folders["CLUSTERKIT_RUN_DIR"]))
        return
    say(f"{run.code}: {shlex.join(run.down_argv())}")
    result = subprocess.run(
        run.down_argv(), cwd=run.repo, env=run.env(), capture_output=True, text=True, timeout=300
    )
    with open(run.log, "a") as log:
        log.write(
            f"# {shlex.join(run.down_argv())} (exit {result.returncode})\n{result.stdout}{result.stderr}"
        )
    left = labelled_containers(["--filter", f"label=clusterkit.cluster={run.name}"])
    if left:
        say(
            f"{run.code}: `make down` left {len(left)} container(s): {(result.stderr or result.stdout).strip()[-300:]}"
        )
        force_remove(run.name, Path(run.folders["CLUSTERKIT_RUN_DIR"]))


def clean_up(run: Run, keep_clone: bool) -> None:
    """Keep the build transcripts next to the log, then remove the run's temporary folders."""
    logs = Path(run.folders["CLUSTERKIT_CACHE_DIR"]) / "logs"
    if logs.is_dir():
        shutil.rmtree(run.build_logs, ignore_errors=True)
        shutil.copytree(logs, run.build_logs)
    for folder in run.folders.values():
        shutil.rmtree(folder, ignore_errors=True)
    if not keep_clone:
        shutil.rmtree(run.home, ignore_errors=True)


def measure(run: Run, keep_clone: bool) -> dict[str, Any]:
    """Clone, remove images, time ``make up`` with empty caches, ``make down``; the run's record."""
    started = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    had_mmdebstrap = shutil.which("mmdebstrap") is not None
    run.phase = "clone"
    say(f"{run.code}: cloning the committed HEAD into {run.repo}")
    run.home.mkdir(parents=True)
    commit = clone(run.repo)
    run.phase = "removing images"
    say(f"{run.code}: removing every clusterkit image from the engine")
    removed = remove_images()
    say(f"{run.code}: removed {len(removed)} image(s)/tag(s)")
    run.phase = "empty caches"
    for folder in run.folders.values():
        Path(folder).mkdir(parents=True)
    loads = [load()]
    run.phase = "make up"
    say(f"{run.code}: timing `{shlex.join(run.up_argv())}` in the clone (log {shown(run.log)})")
    code, total = run_timed(run.up_argv(), run.repo, run.env(), run.log, run.code, run.lines)
    loads.append(load())
    lines = run.lines
    if code != 0:
        step = failing_step(lines, run.backend)
        raise Failure(step, f"`make up` exited with {code} after {total:.1f} s: {error_line(lines)}", run.log)
    run.phase = "make down"
    goal = GOALS[run.backend][1]
    return {
        "backend": run.backend,
        "command": shlex.join(run.up_argv()),
        "seconds": round(total, 1),
        "goal_seconds": goal,
        "met": total <= goal,
        "steps": parse_steps(lines, total, run.backend),
        "log": shown(run.log),
        "build_logs": shown(run.build_logs),
        "date": started,
        "commit": commit,
        "load": {"start": loads[0], "end": loads[1]},
        "mmdebstrap": "present before the run (its install is not in the figure)"
        if had_mmdebstrap
        else "installed by `make tools` during the run (in the figure)",
        "images_removed": removed,
    }


# --- the command --------------------------------------------------------------------------------


def machine_text() -> str:
    """nproc, memory, kernel, engine and storage driver (benchmarks.machine.describe)."""
    from benchmarks import machine

    m = machine.describe()
    return f"{m['nproc']} cores, {m['memory']} memory, kernel {m['kernel']}; {m['docker']}; compose {m['compose']}"


def pip_notes(environ: Mapping[str, str]) -> list[str]:
    """pip settings of this machine that reach the timed run (a find-links folder acts as a cache)."""
    notes = []
    for key in sorted(k for k in environ if k.startswith("PIP_") and k != "PIP_CACHE_DIR"):
        note = f"{key}={environ[key]}"
        if key == "PIP_FIND_LINKS":
            for folder in environ[key].split():
                p = Path(folder)
                if p.is_dir():
                    count = sum(1 for _ in p.iterdir())
                    note += (
                        f" ({folder}: {count} file(s){'; pip may take wheels from there' if count else ''})"
                    )
        notes.append(note)
    return notes


def refusal(force: bool) -> str | None:
    """The one-line reason a real run must not start now, or None."""
    found = labelled_containers()
    if found and not force:
        return (
            f"refusing: {len(found)} container(s) labelled {LABEL} exist ({'; '.join(found[:3])}"
            f"{'; ...' if len(found) > 3 else ''}): removing the images would take their image away; "
            "`clusterkit down` them (or pass --force)"
        )
    return None


def dry_run(runs: list[Run], args: argparse.Namespace, output: Path) -> int:
    print("dry run: nothing is cloned, removed, built or written\n")
    why = refusal(args.force)
    if why:
        print(f"a real run now would exit {REFUSED}: {why}\n")
    plan = plan_removal(engine_images())
    for i, run in enumerate(runs):
        if i == 0:
            images = describe_plan(plan)
        else:
            images = [
                "  $ docker image rm ...   # again: every clusterkit image then on the engine "
                f"(those {runs[0].code} built), chosen the same way"
            ]
        print("\n".join(run.plan_text(images, args.keep_clone)) + "\n")
    print(
        f"then: write {shown(output / 'fresh.json')} (merged) and the P7 section of {shown(output / 'RESULTS.md')}"
    )
    print(
        f"mmdebstrap: {'installed (not removed; its install is not in the figure)' if shutil.which('mmdebstrap') else 'missing: `make tools` installs it inside the timed run'}"
    )
    changes = uncommitted()
    if changes:
        print(
            f"not measured: {len(changes)} uncommitted change(s) in the working tree (the clone has HEAD only)"
        )
    notes = pip_notes(os.environ)
    if notes:
        print("pip settings of this environment passed on: " + "; ".join(notes))
    print(f"machine: {machine_text()}")
    return 0


def write_results(results: dict[str, Any], output: Path) -> None:
    from benchmarks.report import write_marked_section

    path = output / "fresh.json"
    old = None
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            say(f"{shown(path)} was not valid JSON; writing it anew")
    merged = merge_results(old, results)
    path.write_text(json.dumps(merged, indent=1) + "\n")
    write_marked_section(output / "RESULTS.md", MARKERS, section(merged))
    say(f"wrote {shown(path)} and the P7 section of {shown(output / 'RESULTS.md')}")


def failure_line(run: Run | None, step: str | None, why: str, log: Path | None = None) -> str:
    """One line: which run, which step, why, and where its log and build logs are."""
    if run is None:
        return f"error: P7 failed: {why}"
    if step is None:
        step = failing_step(run.lines, run.backend) if run.phase == "make up" else run.phase
    log = log or (run.log if run.log.exists() else None)
    where = f"; log: {shown(log)}" if log else ""
    if run.build_logs.exists():
        where += f"; build logs: {shown(run.build_logs)}"
    return f"error: {run.code} ({run.backend}) failed in step '{step}': {why}{where}"


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


#: The signals that stop a run; each raises KeyboardInterrupt (its name as the argument).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def release_signals() -> None:
    """Ctrl-C, SIGTERM and SIGHUP stop the run (and so start its clean-up)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_interrupt)


def hold_signals() -> None:
    """Ignore them while cleaning up (the commands started meanwhile inherit that)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal that stopped the run (130 for Ctrl-C)."""
    name = str(interrupt) or "SIGINT"
    return 128 + (signal.Signals[name] if name in signal.Signals.__members__ else signal.SIGINT).value


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fresh", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("dask", "spark", "both"), default="both")
    parser.add_argument(
        "--dry-run", action="store_true", help="show what would be removed and run; change nothing"
    )
    parser.add_argument(
        "--keep-clone", action="store_true", help="keep each clone (with its venv) after the run"
    )
    parser.add_argument("--force", action="store_true", help="run even while clusterkit containers exist")
    parser.add_argument(
        "--output", type=Path, default=HERE, help="folder of fresh.json, RESULTS.md and fresh-logs/"
    )
    args = parser.parse_args(raw)
    os.environ["GIT_OPTIONAL_LOCKS"] = "0"  # git calls here never write the working tree's index
    output = args.output.resolve()
    backends = ["dask", "spark"] if args.backend == "both" else [args.backend]
    python = os.path.relpath(sys.executable, ROOT)
    command = f"cd {ROOT} && {python} -m benchmarks.fresh {shlex.join(raw)}".rstrip()
    try:
        sh(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=60)
    except Exception as e:
        print(f"error: the Docker engine does not answer: {e}", file=sys.stderr)
        return REFUSED
    tmp_shown = Path(tempfile.gettempdir()) / "clusterkit-fresh-XXXXXXXX"
    if args.dry_run:
        return dry_run([Run(b, tmp_shown, output / "fresh-logs") for b in backends], args, output)
    why = refusal(args.force)
    if why:
        print(why, file=sys.stderr)
        return REFUSED
    for tool in ("git", "make", "python3.11"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not on PATH", file=sys.stderr)
            return REFUSED
    changes = uncommitted()
    if changes:
        say(
            f"note: {len(changes)} uncommitted change(s) in the working tree are not measured (the clone has HEAD)"
        )
    results: dict[str, Any] = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "machine": machine_text(),
        "notes": [
            "mmdebstrap is installed once per machine by `make tools` and is not removed",
            *(f"kept from this environment: {n}" for n in pip_notes(os.environ)),
        ],
        "runs": {},
    }
    current: Run | None = None
    status = 0
    release_signals()
    tmp = Path(tempfile.mkdtemp(prefix="clusterkit-fresh-"))
    try:
        for backend in backends:
            current = Run(backend, tmp, output / "fresh-logs")
            try:
                results["runs"][current.code] = measure(current, args.keep_clone)
            finally:
                hold_signals()
                say(f"{current.code}: cleaning up (make down, temporary folders)")
                try:
                    make_down(current)
                except Exception as e:
                    say(f"{current.code}: make down failed: {type(e).__name__}: {e}")
                try:
                    clean_up(current, args.keep_clone)
                except Exception as e:
                    say(f"{current.code}: removing the temporary folders failed: {type(e).__name__}: {e}")
                release_signals()
            print("\n".join(table_lines(current.code, results["runs"][current.code])), flush=True)
    except Failure as e:
        status = FAILED
        print(failure_line(current, e.step, str(e), e.log), file=sys.stderr)
    except KeyboardInterrupt as e:
        status = exit_code(e)
        print(failure_line(current, None, f"interrupted ({str(e) or 'SIGINT'})"), file=sys.stderr)
    except Exception as e:
        status = FAILED
        print(failure_line(current, None, f"{type(e).__name__}: {e}"), file=sys.stderr)
    finally:
        hold_signals()
        if not args.keep_clone:
            shutil.rmtree(tmp, ignore_errors=True)
    if results["runs"]:
        write_results(results, output)
    if args.keep_clone and results["runs"]:
        say(f"clones kept under {tmp}")
    return status


if __name__ == "__main__":
    sys.exit(main())
