"""steer directions in other tools' formats: llama.cpp control vectors (gguf), repeng /
steering-vectors {layer: vector} dicts (dicts), llama.cpp itself (llama_cpp, optional extra) and an
Inspect AI model provider (inspect_provider, optional extra; `--model steer/<spec>`).

Every format here uses steer's layer index (layer L = output of decoder block L, 0-based =
`hidden_states[L + 1]`) and sign (positive = towards the concept); docs/interop.md has the table.

>>> from steer.interop import from_dict, interventions
>>> ds = from_dict(control_vector.directions, "honest", model=m)
>>> m.generate(["Hi"], interventions=interventions(ds, 1.5))
"""
from __future__ import annotations

from .dicts import from_dict, interventions, layer_vectors, to_dict
from .gguf import from_gguf, read_gguf, to_gguf

__all__ = ["from_dict", "from_gguf", "interventions", "layer_vectors", "read_gguf", "to_dict", "to_gguf"]
