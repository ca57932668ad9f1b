"""`steer-run`: the Hydra entry point. `steer-run task=sweep experiment=quickstart`, etc."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from ..errors import SteerError
from .schema import register

register()


# conf/ lives at the repository top; steer/conf links to it so installed wheels carry it too.
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def run(cfg: DictConfig) -> None:
    from .tasks import TASKS

    if cfg.task not in TASKS:
        raise SteerError(f"unknown task {cfg.task!r}; use one of {sorted(TASKS)}")
    TASKS[cfg.task](cfg)


def main() -> None:
    try:
        run()
    except SteerError as exc:            # bad input: one line, no traceback
        logging.getLogger("steer").error("%s", exc)
        print(f"steer-run: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
