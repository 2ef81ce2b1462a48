"""Energy of one inference from arithmetic and data movement, with Horowitz's 45 nm table (ISSCC 2014).

Table (REFERENCES.md), picojoules: 32-bit float add 0.9, multiply 3.7; 8-bit int add 0.03, multiply 0.2; reading a
32-bit word from an 8 KB SRAM 5, from DRAM 640. Data movement, not arithmetic, dominates: the point of the estimate.

The model (batch 1, every term configurable through ``EnergyModel``):

- arithmetic: every MAC is one multiply and one add at the arithmetic precision; an element-wise ``add``/``mul``
  layer costs one add (multiply) per output element; a pooling layer one add per input element (a max is a compare,
  priced as an add). Activations and BatchNorm cost nothing: BN folds into the preceding conv at inference, and a
  ReLU is a sign test applied as the conv writes its output.
- weights: every weight is read once per inference from ``weight_memory`` (DRAM by default: a model that does not fit
  on chip; ``"sram"`` for a microcontroller whose weights sit next to the core), packed ``32 / bits`` to a word.
- activations: every layer except those fused into their producer (act, bn, reshape, dropout) reads its input once
  and writes its output once in ``act_memory`` (SRAM by default; a write is priced as a read, for Horowitz gives only
  reads), packed ``32 / act_bits`` to a word. Reuse of an input across the k×k window is assumed to hit registers,
  so this is a lower bound on activation traffic, as in Horowitz's and Eyeriss's accounting of an ideal dataflow.

Precision: ``bits <= 8`` uses the int8 arithmetic costs, anything wider the fp32 costs (the table has no others, and
fp32 is the conservative choice for 16 bits). Results are in microjoules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import NasforgeError
from .layers import LayerSpec

# Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm, picojoules
HOROWITZ_45NM: dict[str, float] = {
    "fp32_add": 0.9,
    "fp32_mult": 3.7,
    "int8_add": 0.03,
    "int8_mult": 0.2,
    "sram_32bit": 5.0,
    "dram_32bit": 640.0,
}
FUSED = frozenset({"act", "bn", "ln", "gn", "reshape", "dropout", "identity"})
_MEMORIES = ("sram", "dram")


@dataclass(frozen=True)
class EnergyModel:
    """Where weights and activations live, and at which bit widths (``act_bits=None``: the same as ``bits``)."""

    bits: int = 32
    act_bits: int | None = None
    weight_memory: str = "dram"
    act_memory: str = "sram"

    def check(self) -> EnergyModel:
        for what, m in (("weight_memory", self.weight_memory), ("act_memory", self.act_memory)):
            if m not in _MEMORIES:
                raise NasforgeError(f"energy model: {what}={m!r} is not one of {', '.join(_MEMORIES)}")
        if self.bits <= 0 or (self.act_bits is not None and self.act_bits <= 0):
            raise NasforgeError(f"energy model: bit widths must be positive, got bits={self.bits}, "
                                f"act_bits={self.act_bits}")
        return self

    @property
    def mult_pj(self) -> float:
        return HOROWITZ_45NM["int8_mult" if self.bits <= 8 else "fp32_mult"]

    @property
    def add_pj(self) -> float:
        return HOROWITZ_45NM["int8_add" if self.bits <= 8 else "fp32_add"]

    def word_pj(self, memory: str) -> float:
        return HOROWITZ_45NM[f"{memory}_32bit"]


@dataclass(frozen=True)
class Energy:
    """An energy estimate split by where it goes, in microjoules."""

    compute_uj: float
    weights_uj: float
    activations_uj: float

    @property
    def total_uj(self) -> float:
        return self.compute_uj + self.weights_uj + self.activations_uj

    def to_dict(self) -> dict[str, float]:
        return {"compute_uj": self.compute_uj, "weights_uj": self.weights_uj,
                "activations_uj": self.activations_uj, "energy_uj": self.total_uj}


def energy(layers: Sequence[LayerSpec], model: EnergyModel | None = None) -> Energy:
    """The energy of one inference of the network ``layers`` under ``model`` (see the module docstring)."""
    m = (model or EnergyModel()).check()
    act_bits = m.act_bits or m.bits
    macs = params = adds = mults = traffic = 0
    for lay in layers:
        k = lay.kind
        macs += lay.macs
        params += lay.params
        if k in FUSED:
            continue
        if k == "add":
            adds += lay.out_numel
        elif k == "mul":
            mults += lay.out_numel
        elif k == "pool":
            adds += lay.in_numel
        traffic += lay.in_numel + lay.out_numel
    compute = (macs + mults) * m.mult_pj + (macs + adds) * m.add_pj
    weights = params * m.bits / 32 * m.word_pj(m.weight_memory)
    acts = traffic * act_bits / 32 * m.word_pj(m.act_memory)
    return Energy(compute * 1e-6, weights * 1e-6, acts * 1e-6)


def energy_uj(layers: Sequence[LayerSpec], bits: int = 32, act_bits: int | None = None) -> float:
    """Total energy in microjoules with the default memory model (weights in DRAM, activations in SRAM)."""
    return energy(layers, EnergyModel(bits, act_bits)).total_uj
