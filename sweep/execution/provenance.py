"""Where a result came from: the code (git commit and a dirty flag, or the package version outside
a git checkout), what identifies each training source (as stage ids hash it), the library
versions and the judge snapshot. Computed once per sweep on the driver, carried to every trial
as plain data, written into every result row (sweep/reporting/results.py) and summarised in the report.
    python -m sweep.execution.provenance [--preset local]
Only versions and identities go in: never environment variables, tokens or URL credentials.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sweep.planning.plan import sources_fingerprint
from sweep.planning.resolution import resolve_preset
from sweep.study.presets import PRESETS, Preset, get_preset

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "dmt-sweep"
LIBRARIES = ("torch", "transformers", "ray", "deepspeed")


def code_version(repo: Path = REPO) -> tuple[str, bool | None]:
    """("git:<commit>", dirty) in a git checkout; ("package:<version>", None) otherwise. Dirty
    means tracked files differ from the commit (untracked files, e.g. a venv, do not count)."""
    try:
        commit = _git(repo, "rev-parse", "HEAD").strip()
        dirty = bool(_git(repo, "status", "--porcelain", "--untracked-files=no").strip())
        return f"git:{commit}", dirty
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        return f"package:{metadata.version(PACKAGE)}", None
    except metadata.PackageNotFoundError:
        return "unknown", None


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True, timeout=30).stdout


def library_versions(names: Sequence[str] = LIBRARIES) -> dict[str, str | None]:
    """Installed versions from package metadata (nothing is imported); None when missing."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def sources_identity(preset: Preset) -> dict:
    """Each source as stage ids identify it (sweep.planning.plan.sources_fingerprint), with any
    user:password@ part of a location URL removed."""
    return {name: {k: _without_credentials(v) if k == "location" else v
                   for k, v in fields.items()}
            for name, fields in sources_fingerprint(preset).items()}


def _without_credentials(location):
    if not isinstance(location, str) or "@" not in location or "://" not in location:
        return location
    parts = urlsplit(location)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def sweep_provenance(preset: Preset, judge_snapshot: str | None = None) -> dict:
    """The sweep-wide part (per-run parts, model and seed, come from the run itself).
    `judge_snapshot`: the exact judge model version that graded MT-Bench, when one did.
    Sources and models with their content as the sweep resolved it (sweep/planning/resolution.py),
    and the test sets the sources were decontaminated against."""
    version, dirty = code_version()
    return {"code_version": version, "code_dirty": dirty, "sources": sources_identity(preset),
            "models": dict(preset.model_contents),
            "decontaminated_against": list(preset.decontaminate),
            "libraries": library_versions(), "judge_snapshot": judge_snapshot}


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m sweep.execution.provenance", description=__doc__)
    p.add_argument("--preset", default="local", choices=sorted(PRESETS))
    args = p.parse_args(argv)

    preset = resolve_preset(get_preset(args.preset), offline=True)
    print(json.dumps(sweep_provenance(preset), indent=1))


if __name__ == "__main__":
    main()
