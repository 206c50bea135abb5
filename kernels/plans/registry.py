"""The model registry: checked plans under `ROOT/NAME/VERSION/`, each with its registry entry.

    reg = Registry("models")
    reg.publish("plans/demo", "demo", "3", data_span_ns=(t0, t1))  # checked, copied, never over
    path = reg.resolve("demo@3")        # or "demo": its newest version
    reg.versions("demo")                # ["1", "2", "3"], oldest first

A version directory is a plan directory (`plan_file.py` checks it on publish and on every
resolve: format, pickles refused, sha256, tensor shapes, input features) plus `entry.json`: name,
version, when it was published, the span of the data it was trained on, and the sha256 of its
manifest, so swapping either file for another is refused. Versions are immutable: publishing an
existing version is refused, whatever the content. The hot swap (issue 19) resolves from here.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path

from redline.kernels.plans.plan_file import MANIFEST, read_plan
from redline.kernels.plans.signing import Trust

ENTRY = "entry.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class RegistryError(ValueError):
    """A name, version or registry entry that is wrong; the message says which and the fix."""


def _checked(kind: str, text: str) -> str:
    if not _NAME.fullmatch(text):
        raise RegistryError(
            f"model {kind} {text!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return text


def _version_key(version: str) -> tuple:
    """Natural order: "2" before "10", "1.9" before "1.10"."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", version))


class Registry:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def publish(self, plan_dir: str | Path, name: str, version: str,
                data_span_ns: tuple[int, int] | None = None) -> Path:  # fmt: skip
        """Check the plan at `plan_dir` and copy it in as NAME@VERSION; returns its directory."""
        _checked("name", name)
        _checked("version", version)
        plan = read_plan(plan_dir)
        dest = self.root / name / version
        if dest.exists():
            raise RegistryError(
                f"{name}@{version} is already in {self.root}: versions never change; publish "
                "under a new version"
            )
        if data_span_ns is not None and not 0 <= data_span_ns[0] <= data_span_ns[1]:
            raise RegistryError(f"data span {data_span_ns}: give (start, end) ns, start <= end")
        tmp = dest.with_name(f".{version}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(plan.directory, tmp)
        entry = {
            "name": name,
            "version": version,
            "published_ns": time.time_ns(),
            "data_span_ns": list(data_span_ns) if data_span_ns else None,
            "weights_sha256": plan.manifest["sha256"],
            "manifest_sha256": hashlib.sha256((tmp / MANIFEST).read_bytes()).hexdigest(),
        }
        (tmp / ENTRY).write_text(json.dumps(entry, indent=1) + "\n")
        tmp.rename(dest)  # a version appears whole or not at all
        return dest

    def versions(self, name: str) -> list[str]:
        """NAME's published versions, oldest first (natural order)."""
        folder = self.root / _checked("name", name)
        if not folder.is_dir():
            return []
        found = [p.name for p in folder.iterdir() if (p / ENTRY).is_file()]
        return sorted(found, key=_version_key)

    def resolve(self, ref: str, *, features: str | None = None,
                trust: Trust | None = None) -> Path:  # fmt: skip
        """The checked plan directory of "NAME@VERSION" (or "NAME": its newest version)."""
        name, _, version = ref.partition("@")
        if not version:
            versions = self.versions(name)
            if not versions:
                raise RegistryError(f"model {name!r}: not in {self.root} (publish it first)")
            version = versions[-1]
        dest = self.root / _checked("name", name) / _checked("version", version)
        if not (dest / ENTRY).is_file():
            have = ", ".join(self.versions(name)) or "none"
            raise RegistryError(f"{name}@{version}: not in {self.root} (versions: {have})")
        entry = json.loads((dest / ENTRY).read_text())
        read_plan(dest, features=features, trust=trust)
        manifest = hashlib.sha256((dest / MANIFEST).read_bytes()).hexdigest()
        if entry.get("manifest_sha256") != manifest or entry.get("version") != version:
            raise RegistryError(
                f"{dest}: its manifest is not the one published as {name}@{version}; a version "
                "never changes: publish the new plan under a new version"
            )
        return dest
