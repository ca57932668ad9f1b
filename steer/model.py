"""SteeredModel: an nnsight-wrapped causal LM with steering, monitoring and residual reads.

All reads and edits happen inside nnsight traces on the decoder-block outputs; a forward pass
and every decode step of `generate` run the same edit code (`_layer_pass`), so a steered
generation means exactly what a steered forward means.
"""
from __future__ import annotations

import copy
import hashlib
import json
import operator
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from nnsight import LanguageModel

from .architectures import d_model_of, find_block_path, n_layers_of, residual_of, with_residual
from .cache import cache_dir, write_json_atomic
from .errors import SteerError
from .interventions import Plan, apply_slots, compile_plan, normalize_layers, per_row, resolve_layers
from .monitor import GenerationOutput, MonitorPlan, Projections, align, compile_monitor, restrict
from .positions import PositionSpec, Turn, check_positions, is_role_spec, turn_spans

REFERENCE_TEXTS_FILE = "reference_texts.json"


def _reference_texts() -> list[str]:
    from importlib import resources

    return json.loads(resources.files("steer.data").joinpath(REFERENCE_TEXTS_FILE).read_text())


@dataclass
class Residuals:
    """Block outputs for a batch: `res[L]` is [B, T, D] in the left-padded layout of `mask`."""

    hidden: dict[int, torch.Tensor]
    mask: torch.Tensor                 # [B, T] 1 for real tokens
    tokens: list[list[str]]            # row-relative real tokens

    def __getitem__(self, layer: int) -> torch.Tensor:
        return self.hidden[layer]

    @property
    def layers(self) -> list[int]:
        return sorted(self.hidden)


class SteeredModel:
    """A loaded model ready for steering. Build it with `steer.load_model`."""

    def __init__(self, hf_model: torch.nn.Module, tokenizer: Any, *, name: str,
                 block_path: str | None = None) -> None:
        self.name = name
        self.hf = hf_model.eval()
        tok = copy.deepcopy(tokenizer)       # nnsight sets padding_side; keep the caller's intact
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self.tokenizer = tok
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.lm = LanguageModel(self.hf, tokenizer=tok)
        self.block_path = block_path or find_block_path(self.hf)
        self._blocks = operator.attrgetter(self.block_path)(self.lm)
        self.n_layers = n_layers_of(self.hf.config)
        self.d_model = d_model_of(self.hf.config)
        self._norms: list[float] | None = None
        self._fingerprint: str | None = None
        self._pieces: tuple[int, dict[int, str]] = (id(tok), {})

    def __repr__(self) -> str:
        return (f"SteeredModel({self.name!r}, n_layers={self.n_layers}, d_model={self.d_model}, "
                f"device={self.device}, dtype={self.dtype})")

    # ---- basic facts -------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.hf.parameters()).dtype

    @property
    def fingerprint(self) -> str:
        """Stable id of config + a weight sample: directions and norms are keyed by it."""
        if self._fingerprint is None:
            cfg = {k: v for k, v in self.hf.config.to_dict().items()
                   if not k.startswith("_") and k not in ("transformers_version", "torch_dtype", "dtype")}
            h = hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode())
            emb = self.hf.get_input_embeddings().weight
            h.update(emb[:8].detach().float().cpu().numpy().tobytes())
            last = self._block_module(self.n_layers - 1)
            h.update(next(last.parameters()).detach().flatten()[:64].float().cpu().numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    @property
    def tokenizer_fingerprint(self) -> str:
        """Stable id of the vocabulary, special tokens and chat template (saved directions record it).

        Kept apart from `fingerprint` so caches keyed by that one stay valid.
        """
        tok = self.tokenizer
        cached = getattr(self, "_tok_fingerprint", None)
        if cached is None or cached[0] != id(tok):        # hashing the vocabulary takes ~0.2 s
            h = hashlib.sha256(json.dumps(sorted(tok.get_vocab().items()), default=str).encode())
            h.update(json.dumps([str(tok.bos_token), str(tok.eos_token),
                                 str(getattr(tok, "chat_template", None))]).encode())
            cached = self._tok_fingerprint = (id(tok), h.hexdigest()[:16])
        return cached[1]

    def _block_module(self, layer: int) -> torch.nn.Module:
        return self.hf.get_submodule(self.block_path)[layer]

    # ---- tokenising --------------------------------------------------------------------
    def format_prompts(self, prompts: Sequence[Any], *, chat: bool = False,
                       system: str | None = None) -> list[str]:
        """Prompt strings as fed to the model; chat=True applies the tokenizer's chat template.

        With chat=True a prompt may also be a list of {"role", "content"} messages.
        """
        if isinstance(prompts, str):
            raise SteerError("pass a list of strings, not a single string")
        if not chat:
            bad = [p for p in prompts if not isinstance(p, str)]
            if bad:
                raise SteerError(f"prompts must be strings (or use chat=True for messages): {bad[0]!r}")
            return list(prompts)
        if not getattr(self.tokenizer, "chat_template", None):
            raise SteerError(f"chat=True but {self.name} has no chat template")
        out = []
        for p in prompts:
            out.append(self.tokenizer.apply_chat_template(self._messages(p, system), add_generation_prompt=True,
                                                          tokenize=False))
        return out

    @staticmethod
    def _messages(prompt: Any, system: str | None) -> list[dict]:
        msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        if system is not None and not (msgs and msgs[0].get("role") == "system"):
            msgs = [{"role": "system", "content": system}] + msgs
        return msgs

    def chat_turns(self, prompts: Sequence[Any], *, system: str | None = None) -> list[list[Turn]]:
        """Per row, each message's content as a row-relative token span of its chat prompt.

        The spans behind role positions ("user", "assistant:-1", ...; see steer.positions).

        >>> m.chat_turns([[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]])
        [[Turn(role='user', start=..., end=...), Turn(role='assistant', start=..., end=...)]]
        """
        if not getattr(self.tokenizer, "is_fast", False):
            raise SteerError(f"role positions need a fast tokenizer (offset mapping); {self.name}'s is not")
        out = []
        for b, p in enumerate(prompts):
            msgs = self._messages(p, system)
            text = self.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            out.append(turn_spans(text, msgs, enc["offset_mapping"], row=b))
        return out

    def _turns_thunk(self, prompts: Sequence[Any], chat: bool, system: str | None) -> Callable[[], list[list[Turn]]]:
        """Turn spans computed on first use only: most calls never ask for a role."""
        memo: list = []

        def get() -> list[list[Turn]]:
            if not chat:
                raise SteerError("role positions ('user', 'assistant:-1', ...) need chat=True: "
                                 "roles come from the chat template")
            if not memo:
                memo.append(self.chat_turns(prompts, system=system))
            return memo[0]
        return get

    def tokenize(self, texts: Sequence[str], *, chat: bool = False) -> dict[str, torch.Tensor]:
        """Left-padded batch; formatted chat prompts already carry their special tokens."""
        if not texts:
            raise SteerError("no texts given")
        enc = self.tokenizer(list(texts), return_tensors="pt", padding=True,
                             add_special_tokens=not chat)
        return {"input_ids": enc["input_ids"].to(self.device),
                "attention_mask": enc["attention_mask"].to(self.device)}

    def _pieces_of(self, ids: Sequence[int]) -> list[str]:
        """`[tokenizer.decode([t]) for t in ids]`, memoised per token id (decode is pure)."""
        owner, memo = self._pieces
        if owner != id(self.tokenizer):                  # the tokenizer was swapped: start over
            memo = {}
            self._pieces = (id(self.tokenizer), memo)
        out = []
        for t in ids:
            piece = memo.get(t)
            if piece is None:
                piece = memo[t] = self.tokenizer.decode([t])
            out.append(piece)
        return out

    def _row_tokens(self, ids: torch.Tensor, mask: torch.Tensor) -> list[list[str]]:
        return [self._pieces_of(row[m.bool()].tolist()) for row, m in zip(ids.cpu(), mask.cpu())]

    # ---- the shared per-layer pass -----------------------------------------------------
    def _layer_pass(self, layers: list[int], plan: Plan, cols: slice | int,
                    capture: set[int], mon: MonitorPlan | None, saved: dict, stream: dict | None,
                    reducer: Callable[[int, torch.Tensor], Any] | None = None) -> None:
        """Runs inside an nnsight trace (or one decode step): edit, then read, layer by layer.

        `reducer(layer, x)` (if given) replaces what is kept of a captured layer, so a caller
        can reduce [B, T, D] to per-text sums inside the trace instead of holding every layer.
        """
        for layer in layers:
            block = self._blocks[layer]
            out = block.output
            x = residual_of(out)
            if layer in plan:
                x = apply_slots(x, plan[layer], cols)
                block.output = with_residual(out, x)
            if layer in capture:
                saved[("res", layer)] = x if reducer is None else reducer(layer, x)
            if mon is not None and layer in mon.matrices:
                p = x @ mon.matrices[layer]
                if stream is not None:
                    stream[layer].append(p)
                else:
                    saved[("mon", layer)] = p

    def _prepare(self, enc: dict, interventions: Any, directions: Any, N: int,
                 turns_of: Callable[[], list[list[Turn]]] | None = None) -> tuple[Plan, torch.Tensor, int]:
        B, T = enc["input_ids"].shape
        prompt_lens = enc["attention_mask"].sum(dim=1).cpu()
        rows = per_row(interventions, B)
        roles = turns_of is not None and any(is_role_spec(iv.positions) for row in rows for iv in row)
        plan = compile_plan(rows, n_layers=self.n_layers, d_model=self.d_model,
                            residual_norm=self.residual_norm, prompt_lens=prompt_lens, T=T, N=N,
                            dtype=self.dtype, device=self.device, directions=directions,
                            turns=turns_of() if roles else None)
        return plan, prompt_lens, T

    @staticmethod
    def _restrict(values: dict[str, torch.Tensor], positions: PositionSpec, prompt_lens: torch.Tensor, T: int,
                  N: int, turns_of: Callable[[], list[list[Turn]]]) -> dict[str, torch.Tensor]:
        """Monitored values outside `positions` become NaN (a role, indices, "prompt", ...)."""
        from .positions import row_relative, timeline_mask

        spec = check_positions(positions)
        if isinstance(spec, str) and spec == "all":
            return values
        mask = timeline_mask(spec, prompt_lens, T, N, turns_of() if is_role_spec(spec) else None)
        width = next(iter(values.values())).shape[-1] if values else 0
        return restrict(values, row_relative(mask, prompt_lens, T, width))

    def _forward(self, enc: dict, plan: Plan, T: int, *, capture: set[int] = frozenset(),
                 mon: MonitorPlan | None = None, want_logits: bool = False,
                 reducer: Callable[[int, torch.Tensor], Any] | None = None) -> dict:
        needed = set(plan) | set(capture) | (set(mon.layers) if mon else set())
        layers = sorted(needed)
        saved: dict = {}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # No KV cache: a single pass never reads it back, and for a long batch the cache
            # (2 tensors per layer, kept until the pass ends) outweighs the activations.
            with self.lm.trace(enc, use_cache=False) as tracer:
                self._layer_pass(layers, plan, slice(0, T), capture, mon, saved, None, reducer)
                for v in saved.values():
                    if isinstance(v, torch.Tensor):
                        v.save()
                if want_logits:
                    saved["logits"] = self.lm.output.logits.save()
                else:
                    tracer.stop()  # nothing past the last needed layer has to run
        return saved

    # ---- public reads ------------------------------------------------------------------
    def logits(self, texts: Sequence[str], interventions: Any = None, *,
               directions: Any = None, chat: bool = False, system: str | None = None) -> torch.Tensor:
        """[B, T, V] next-token logits, tokenised as `m.tokenizer(texts)` (left padding).

        >>> m.logits(["I feel"], interventions=[Intervention("add", direction=u, layers=[12], strength=0.2)])
        """
        enc = self.tokenize(self.format_prompts(texts, chat=chat, system=system), chat=chat)
        plan, _, T = self._prepare(enc, interventions, directions, 0, self._turns_thunk(texts, chat, system))
        return self._forward(enc, plan, T, want_logits=True)["logits"]

    def read(self, texts: Sequence[Any], layers: Any, interventions: Any = None, *, directions: Any = None,
             chat: bool = False, system: str | None = None) -> tuple[torch.Tensor, Residuals]:
        """`logits` and `residuals` from one pass: ([B, T, V], block outputs at `layers`).

        >>> logits, res = m.read([[{"role": "user", "content": "Hi"}]], layers=[12, 29], chat=True)
        """
        enc = self.tokenize(self.format_prompts(texts, chat=chat, system=system), chat=chat)
        capture = set(resolve_layers(normalize_layers(layers), self.n_layers))
        plan, _, T = self._prepare(enc, interventions, directions, 0, self._turns_thunk(texts, chat, system))
        saved = self._forward(enc, plan, T, capture=capture, want_logits=True)
        res = Residuals({L: saved[("res", L)] for L in sorted(capture)}, enc["attention_mask"].cpu(),
                        self._row_tokens(enc["input_ids"], enc["attention_mask"]))
        return saved["logits"], res

    def residuals(self, texts: Sequence[str], layers: Any, interventions: Any = None, *,
                  directions: Any = None, chat: bool = False) -> Residuals:
        """Block outputs at `layers` ([B, T, D] each, after any interventions there)."""
        enc = self.tokenize(self.format_prompts(texts, chat=chat), chat=chat)
        capture = set(resolve_layers(normalize_layers(layers), self.n_layers))
        plan, _, T = self._prepare(enc, interventions, directions, 0, self._turns_thunk(texts, chat, None))
        saved = self._forward(enc, plan, T, capture=capture)
        return Residuals({L: saved[("res", L)] for L in sorted(capture)}, enc["attention_mask"].cpu(),
                         self._row_tokens(enc["input_ids"], enc["attention_mask"]))

    def monitor(self, texts: Sequence[str], directions: Mapping[str, Any], layers: Any,
                interventions: Any = None, *, direction_set: Any = None, chat: bool = False,
                positions: PositionSpec = "all") -> Projections:
        """Per-token projections of `texts` onto named directions at `layers`.

        positions: keep values only there (NaN elsewhere), e.g. "assistant" for a chat's replies.
        """
        enc = self.tokenize(self.format_prompts(texts, chat=chat), chat=chat)
        mon = compile_monitor(directions, layers, n_layers=self.n_layers, d_model=self.d_model,
                              dtype=self.dtype, device=self.device, directions=direction_set)
        turns_of = self._turns_thunk(texts, chat, None)
        plan, prompt_lens, T = self._prepare(enc, interventions, direction_set, 0, turns_of)
        saved = self._forward(enc, plan, T, mon=mon)
        starts = (T - prompt_lens).tolist()
        values = align({L: saved[("mon", L)] for L in mon.layers}, mon, starts, prompt_lens.tolist())
        values = self._restrict(values, positions, prompt_lens, T, 0, turns_of)
        return Projections(values, self._row_tokens(enc["input_ids"], enc["attention_mask"]), mon.layers)

    def residual_norm(self, layer: int) -> float:
        """Mean L2 norm of the residual at `layer` over steer's reference texts (token 0 left out).

        Computed once for all layers in one pass, cached in memory and on disk per model.
        """
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < self.n_layers:
            raise SteerError(f"layer {layer!r} out of range for a {self.n_layers}-layer model (0..{self.n_layers - 1})")
        if self._norms is None:
            path = cache_dir("norms") / f"{self.fingerprint}.json"
            if path.exists():
                self._norms = json.loads(path.read_text())["norms"]
            else:
                self._norms = self._measure_norms()
                write_json_atomic(path, {"model": self.name, "norms": self._norms})
        return self._norms[layer]

    def _measure_norms(self) -> list[float]:
        enc = self.tokenize(_reference_texts())
        keep = enc["attention_mask"].clone()
        first = keep.float().argmax(dim=1)                   # each row's token 0 (attention sink)
        keep[torch.arange(keep.shape[0]), first] = 0
        keep = keep.bool()
        norms = []
        saved = self._forward(enc, {}, enc["input_ids"].shape[1], capture=set(range(self.n_layers)))
        for layer in range(self.n_layers):
            x = saved[("res", layer)].float()
            norms.append(float(x.norm(dim=-1)[keep].mean()))
        return norms

    # ---- generation --------------------------------------------------------------------
    def generate(self, prompts: Sequence[Any], interventions: Any = None, *, max_new_tokens: int = 32,
                 chat: bool = False, system: str | None = None, monitor: Mapping[str, Any] | None = None,
                 monitor_layers: Any = None, directions: Any = None, do_sample: bool = False,
                 temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None,
                 min_new_tokens: int | None = None, monitor_positions: PositionSpec = "all",
                 use_cache: bool = True) -> GenerationOutput:
        """Generate with interventions applied at every forward step (greedy unless do_sample).

        min_new_tokens: suppress end-of-sequence until that many tokens exist (fixed-length
        runs, e.g. benchmarks); None (default) lets a row stop at its first EOS.
        monitor_positions: keep projections only there (NaN elsewhere), e.g. "assistant".
        use_cache: False recomputes the whole sequence at every step (slow; the reference the
        cached path is tested against).

        >>> out = m.generate(["Hi"], interventions=[iv], chat=True, monitor={"calm": u}, monitor_layers=[12])
        >>> out.texts[0], out.projections["calm"][0, 0]
        """
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise SteerError(f"max_new_tokens={max_new_tokens!r} must be a positive int")
        if min_new_tokens is not None and (isinstance(min_new_tokens, bool) or not isinstance(min_new_tokens, int)
                                           or not 0 <= min_new_tokens <= max_new_tokens):
            raise SteerError(f"min_new_tokens={min_new_tokens!r} must be an int in [0, max_new_tokens]")
        texts = self.format_prompts(prompts, chat=chat, system=system)
        enc = self.tokenize(texts, chat=chat)
        mon = compile_monitor(monitor, monitor_layers, n_layers=self.n_layers, d_model=self.d_model,
                              dtype=self.dtype, device=self.device, directions=directions)
        turns_of = self._turns_thunk(prompts, chat, system)
        plan, prompt_lens, T = self._prepare(enc, interventions, directions, max_new_tokens, turns_of)
        # The loop body must touch at least one module per step, or nnsight's iter[:] never waits.
        layers = sorted(set(plan) | (set(mon.layers) if mon else set())) or [0]
        gen_kw: dict[str, Any] = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                                      pad_token_id=self.tokenizer.pad_token_id, use_cache=use_cache)
        if min_new_tokens:
            gen_kw["min_new_tokens"] = min_new_tokens
        if do_sample:
            gen_kw.update(temperature=temperature, top_p=top_p, top_k=0)
        else:
            gen_kw.update(temperature=None, top_p=None, top_k=None)
        if seed is not None:
            torch.manual_seed(seed)
        # Filled from inside the trace: objects made out here are shared with nnsight's worker.
        stream: dict[int, list[torch.Tensor]] = {L: [] for L in (mon.layers if mon else ())}
        steps: list[int] = []
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")   # nnsight warns that an open iter[:] loop ran out
            with self.lm.generate(**gen_kw) as tracer:
                with tracer.invoke(enc):
                    for step in tracer.iter[:]:
                        if use_cache:
                            cols: slice | int = slice(0, T) if step == 0 else T + step - 1
                        else:                  # every step sees the whole sequence so far
                            cols = slice(0, T + max(0, step))
                        self._layer_pass(layers, plan, cols, set(), mon, {}, stream)
                        steps.append(step)
                with tracer.invoke():
                    result = tracer.result.save()
        if not use_cache:                      # keep each step's new column, as the cached path streams
            for L in stream:
                stream[L][:] = [p if i == 0 else p[:, -1:] for i, p in enumerate(stream[L])]
        out = self._finish_generation(result, texts, prompt_lens, T, len(steps), mon, stream)
        if mon is not None:
            out.projections = self._restrict(out.projections, monitor_positions, prompt_lens, T,
                                             max_new_tokens, turns_of)
        return out

    def _finish_generation(self, result: torch.Tensor, texts: list[str], prompt_lens: torch.Tensor,
                           T: int, n_steps: int, mon: MonitorPlan | None, stream: dict) -> GenerationOutput:
        eos = self.hf.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        result = result.cpu()
        gen_lens, token_ids, tokens, outs = [], [], [], []
        for b in range(result.shape[0]):
            gen = result[b, T:].tolist()
            n = next((i + 1 for i, t in enumerate(gen) if t in eos_ids), len(gen))
            gen_lens.append(n)
            ids = result[b, T - int(prompt_lens[b]):T].tolist() + gen[:n]
            token_ids.append(ids)
            tokens.append(self._pieces_of(ids))
            outs.append(self.tokenizer.decode(gen[:n], skip_special_tokens=True))
        projections: dict[str, torch.Tensor] = {}
        if mon is not None:
            per_layer = {L: torch.cat(list(stream[L]), dim=1) for L in mon.layers}
            starts = (T - prompt_lens).tolist()
            projections = align(per_layer, mon, starts, [len(t) for t in token_ids])
        return GenerationOutput(texts=outs, prompts=texts, tokens=tokens, token_ids=token_ids,
                                prompt_lengths=prompt_lens.tolist(), generated_lengths=gen_lens,
                                n_steps=n_steps, projections=projections,
                                monitor_layers=mon.layers if mon else ())
