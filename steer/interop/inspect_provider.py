"""Inspect AI model provider: `inspect eval <task> --model steer/<spec> -M intervention=...`.

<spec> is anything `steer.load_model` takes (`smollm2-135m`, a hub id, a directory, a .gguf).
Model args (`-M key=value`, or `--model-config file.yaml` holding the same keys):

- `intervention`: `emotion:op:layers[:amount[:positions]]` (e.g. `desperate:add:14:0.1`), an inline
  mapping (`"{emotion: calm, op: add, layers: [12, 14], strength: -0.05}"`) or a list of them;
  or loose `emotion`, `op`, `layers`, `strength`, `value`, `positions`, `scale` for one edit;
- `config`: a steer YAML/JSON file with `interventions: [...]` (and any key below);
- `directions`: a saved DirectionSet (checked against the model; `force=true` to override),
  else the 24 core concepts plus the named ones are extracted at the needed layers (cached);
- `chat` (default true), `device`, `dtype`, `batch_size` (default 8: concurrent samples are
  generated as one packed batch), `max_tokens` (default when the task sets none: 256).

Greedy unless the task sets a temperature > 0. Tools are not offered (steer models are plain
chat models here); tool messages are passed as user text. Requires the asyncio backend.

>>> inspect eval steer/valence --model steer/smollm2-135m -M intervention=happy:add:15:0.3
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from importlib import resources
from typing import Any

from inspect_ai.model import (ChatCompletionChoice, ChatMessage, ChatMessageAssistant, GenerateConfig, ModelAPI,
                              ModelOutput, ModelUsage)
from inspect_ai.tool import ToolChoice, ToolInfo

from ..errors import SteerError
from .spec import build_interventions, intervention_specs, read_config

DEFAULT_MAX_TOKENS = 256


def core_emotions() -> list[str]:
    """The 24 core concepts of steer's studies (conf/directions/core.yaml)."""
    import yaml

    text = resources.files("steer").joinpath("conf/directions/core.yaml").read_text()
    return list(yaml.safe_load(text)["emotions"])


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class SteerAPI(ModelAPI):
    """A steer model with fixed interventions, generating for any Inspect task."""

    def __init__(self, model_name: str, base_url: str | None = None, api_key: str | None = None,
                 config: GenerateConfig = GenerateConfig(), **model_args: Any) -> None:
        super().__init__(model_name=model_name, base_url=base_url, api_key=api_key, config=config)
        import steer

        args = dict(model_args)
        if args.get("config"):
            file_args = read_config(args.pop("config"))
            args = {**file_args, **args}
        loose = {k: args.pop(k, None) for k in ("emotion", "op", "layers", "strength", "value", "positions", "scale")}
        self.specs = intervention_specs(args.pop("interventions", None), **{}) + \
            intervention_specs(args.pop("intervention", None), **loose)
        self.chat = _flag(args.pop("chat", True))
        self.batch_size = int(args.pop("batch_size", 8))
        self.default_max_tokens = int(args.pop("max_tokens", DEFAULT_MAX_TOKENS))
        directions = args.pop("directions", None)
        force = _flag(args.pop("force", False))
        device, dtype = args.pop("device", None), args.pop("dtype", None)
        if args:
            raise SteerError(f"unknown steer model arg {sorted(args)[0]!r}")
        spec = None if model_name in ("default", "embedded") else model_name
        self.model = steer.load_model(spec, device=device, dtype=dtype)
        self.directions = None
        if self.specs:
            if directions:
                self.directions = steer.DirectionSet.load(directions, model=self.model, force=force)
            else:
                needed = {s["emotion"] for s in self.specs}
                layers = sorted({L for s in self.specs for L in (s["layers"] if s["layers"] != "all"
                                                                 else range(self.model.n_layers))})
                self.directions = steer.extract_directions(self.model, emotions=sorted(set(core_emotions()) | needed),
                                                           layers=layers, progress=False)
        self.interventions = build_interventions(self.specs, self.directions)
        self._pending: list[tuple[tuple, Any, asyncio.Future]] = []
        self._worker: asyncio.Task | None = None

    def max_connections(self) -> int:
        return self.batch_size

    def max_tokens(self) -> int | None:
        return self.default_max_tokens

    def connection_key(self) -> str:
        return f"steer/{self.model_name}"

    async def generate(self, input: list[ChatMessage], tools: list[ToolInfo], tool_choice: ToolChoice,
                       config: GenerateConfig) -> ModelOutput:
        messages = [{"role": m.role if m.role in ("system", "user", "assistant") else "user", "content": m.text}
                    for m in input]
        prompt: Any = messages if self.chat else "\n\n".join(m["content"] for m in messages)
        temperature = config.temperature or 0.0
        key = (config.max_tokens or self.default_max_tokens, temperature > 0, temperature,
               config.top_p or 1.0, config.seed, tuple(config.stop_seqs or ()))
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._pending.append((key, prompt, future))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Take up to batch_size queued requests with the same settings and generate them together."""
        while self._pending:
            await asyncio.sleep(0.05)          # let samples started together all queue first
            key = self._pending[0][0]
            batch = [p for p in self._pending if p[0] == key][: self.batch_size]
            for p in batch:
                self._pending.remove(p)
            try:
                outputs = await asyncio.to_thread(self._run, key, [p[1] for p in batch])
            except Exception as exc:           # noqa: BLE001 - handed to every waiting sample
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, _, fut), out in zip(batch, outputs):
                if not fut.done():
                    fut.set_result(out)

    def _run(self, key: tuple, prompts: Sequence[Any]) -> list[ModelOutput]:
        max_tokens, do_sample, temperature, top_p, seed, stops = key
        t0 = time.monotonic()
        out = self.model.generate(list(prompts), interventions=self.interventions, directions=self.directions,
                                  max_new_tokens=max_tokens, chat=self.chat, do_sample=do_sample,
                                  temperature=temperature if do_sample else 1.0, top_p=top_p, seed=seed)
        elapsed = time.monotonic() - t0
        described = [iv.describe() for iv in self.interventions]
        results = []
        for i, text in enumerate(out.texts):
            cut = min([text.index(s) for s in stops if s in text], default=None)
            n_out = out.generated_lengths[i]
            stop = "stop" if cut is not None or n_out < max_tokens else "max_tokens"
            choice = ChatCompletionChoice(message=ChatMessageAssistant(content=text if cut is None else text[:cut],
                                                                       model=self.model_name, source="generate"),
                                          stop_reason=stop)
            results.append(ModelOutput(model=self.model_name, choices=[choice], time=elapsed,
                                       usage=ModelUsage(input_tokens=out.prompt_lengths[i], output_tokens=n_out,
                                                        total_tokens=out.prompt_lengths[i] + n_out),
                                       metadata={"steer_interventions": described, "batch_rows": len(prompts)}))
        return results
