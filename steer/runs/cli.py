"""`steer-run`: the Hydra entry point. `steer-run task=sweep experiment=quickstart`, etc.

Bad input of any kind (an unknown key, a wrong type, bad override syntax, an unknown emotion, a
missing or malformed file, a layer the model does not have) ends the run with one line on stderr,
`steer-run: error: ...`, and exit status 2; no traceback. Anything else is a bug and keeps its
traceback.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import hydra
from omegaconf import DictConfig

from ..errors import ConfigError, SteerError, one_line
from .schema import register

register()

log = logging.getLogger("steer")

# conf/ lives at the repository top; steer/conf links to it so installed wheels carry it too.
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
EXIT_BAD_INPUT = 2


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def run(cfg: DictConfig) -> None:
    from .checks import check_config

    try:
        check_config(cfg)                  # cheap checks first: no model, mostly no torch
        from .tasks import TASKS

        TASKS[cfg.task](cfg)
    except SteerError as exc:
        exc = _in_job(exc)
        log.error("%s", exc)               # the job's log file says why it stopped
        raise exc from None


def _in_job(exc: SteerError) -> SteerError:
    """In a multirun, say which job failed: the other jobs ran (or run) regardless."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return exc
    where = hc.job.override_dirname or "no overrides"
    exc.args = (f"job {hc.job.num} ({where}): {exc}",)
    return exc


class _DropHydraJobLine:
    """stderr minus Hydra's "Error executing job with overrides: [...]" line (the error says it)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if text.startswith("Error executing job with overrides:"):
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main() -> None:
    # Hydra re-raises instead of printing its own multi-line report; we print one line instead.
    full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    stderr = sys.stderr
    sys.stderr = _DropHydraJobLine(stderr)  # type: ignore[assignment]
    try:
        run()
    except SteerError as exc:
        _fail(exc, stderr)
    except Exception as exc:
        message = hydra_message(exc, sys.argv[1:])
        if message is None:
            raise                            # not bad input: a bug, keep the traceback
        _fail(ConfigError(message), stderr)
    finally:
        sys.stderr = stderr
        if full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = full_error


def _fail(exc: SteerError, stream: TextIO) -> None:
    print(f"steer-run: error: {one_line(exc)}", file=stream, flush=True)
    sys.exit(EXIT_BAD_INPUT)


def hydra_message(exc: BaseException, argv: list[str]) -> str | None:
    """One line for an error Hydra or OmegaConf raised about the config; None if it is not one.

    >>> hydra_message(ConfigCompositionException("Could not override 'foo'."), ["foo=1"])
    "unknown config key 'foo'"
    """
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(exc, (HydraException, OmegaConfBaseException)):
        return None
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else None
    text = str(exc)
    if isinstance(exc, OverrideParseException):
        bad = _unparsable(argv)
        return f"bad override syntax{f' in {bad!r}' if bad else ''}: {_first(text)}"
    if isinstance(exc, MissingConfigException):
        return _missing_config(text)
    if text.startswith(("Could not override", "Could not append")) and cause is not None and "not in" in str(cause):
        key = _key_of(cause) or (text.split("'")[1] if "'" in text else "")
        return f"unknown config key {key!r}" + _did_you_mean(key)     # not Hydra's "+key" hint: it adds an unused key
    if cause is not None:
        key = _key_of(cause)
        return f"{key}: {_first(str(cause))}" if key else _first(str(cause))
    if isinstance(exc, OmegaConfBaseException):
        key = _key_of(exc)
        return f"{key}: {_first(text)}" if key else _first(text)
    return _first(text)


def _first(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else "invalid configuration"


def _key_of(exc: BaseException | None) -> str:
    return str(getattr(exc, "full_key", "") or "") if exc is not None else ""


def _unparsable(argv: list[str]) -> str | None:
    """The command-line override Hydra's grammar rejects."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for arg in argv:
        if arg.startswith("-"):
            continue
        try:
            parser.parse_override(arg)
        except Exception:
            return arg
    return None


def _missing_config(text: str) -> str:
    """"Could not find 'model/x'" plus the options Hydra lists, on one line."""
    lines = text.splitlines()
    head = _first(text)
    if "Could not find '" in head:
        head = "no config " + head.split("Could not find ", 1)[1]
    options: list[str] = []
    listing = False
    for ln in lines:
        if ln.startswith("Available options"):
            listing = True
        elif listing and ln.startswith("\t") and ln.strip() != "schema":
            options.append(ln.strip())
        elif listing and not ln.startswith("\t"):
            listing = False
    return head + (f"; use one of {', '.join(options)}" if options else "")


def _did_you_mean(key: str) -> str:
    import difflib

    from omegaconf import OmegaConf

    from .schema import Config

    known = list(_flat_keys(OmegaConf.to_container(OmegaConf.structured(Config))))
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _flat_keys(node: Any, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return [prefix[:-1]] if prefix else []
    out = [prefix[:-1]] if prefix else []
    for k, v in node.items():
        out += _flat_keys(v, f"{prefix}{k}.")
    return out


if __name__ == "__main__":
    main()
