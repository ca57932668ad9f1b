"""`make demo`: steer the embedded model along a happy-minus-sad direction and watch it.

Builds the direction from the shipped stories (mean residual of "happy" stories minus "sad"
stories at one layer), generates from the same prompts unsteered and steered both ways, and
prints the texts with per-token projections onto the direction.
"""
from __future__ import annotations

import argparse
import time

import torch

import steer
from steer import Intervention, emotions

PROMPTS = ["Write two sentences about your morning.", "Describe the house you grew up in."]


def story_direction(m: steer.SteeredModel, pos: str, neg: str, layer: int) -> torch.Tensor:
    """Mean residual over `pos` stories minus over `neg` stories (token 0 left out)."""
    means = []
    for name in (pos, neg):
        texts = [r.text for r in emotions.stories(name)]
        res = m.residuals(texts, layers=[layer])
        keep = res.mask.bool().clone()
        keep[torch.arange(len(texts)), keep.float().argmax(1)] = False   # the attention sink
        means.append(res[layer][keep].mean(0))
    return means[0] - means[1]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--layer", type=int, default=15)
    ap.add_argument("--strength", type=float, default=0.3, help="fraction of the residual norm")
    ap.add_argument("--tokens", type=int, default=40)
    args = ap.parse_args(argv)

    t0 = time.time()
    m = steer.load_model()
    print(f"loaded {m} in {time.time() - t0:.1f} s; residual norm at layer {args.layer}: "
          f"{m.residual_norm(args.layer):.1f}")
    u = story_direction(m, "happy", "sad", args.layer)
    u = u / u.norm()
    runs = {"unsteered": None,
            f"happy +{args.strength}": Intervention("add", direction=u, layers=[args.layer], strength=args.strength),
            f"sad  -{args.strength}": Intervention("subtract", direction=u, layers=[args.layer], strength=args.strength)}
    # one packed batch: every (condition, prompt) pair is a row with its own intervention set
    labels, prompts, sets = [], [], []
    for label, iv in runs.items():
        for p in PROMPTS:
            labels.append(label)
            prompts.append(p)
            sets.append([iv] if iv else [])
    out = m.generate(prompts, interventions=sets, max_new_tokens=args.tokens, chat=True,
                     monitor={"happy-sad": u}, monitor_layers=[args.layer + 2])
    norm = m.residual_norm(args.layer + 2)
    for b, (label, prompt) in enumerate(zip(labels, prompts)):
        P, n = out.prompt_lengths[b], out.generated_lengths[b]
        proj = out.projections["happy-sad"][b, 0, P:P + n] / norm
        print(f"\n[{label}] {prompt}\n  {out.texts[b].strip()}")
        shown = [f"{tok.strip() or repr(tok)}({v:+.2f})" for tok, v in zip(out.tokens[b][P:P + n], proj.tolist())
                 if v == v]
        print("  per-token projection (norm units, layer %d): %s" % (args.layer + 2, " ".join(shown[:24])))
        print(f"  mean projection: {float(proj.nanmean()):+.3f}")
    print(f"\ndone in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
