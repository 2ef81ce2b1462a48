"""``Family``: a search space plus one description of its network (a blueprint); and the family registry.

A family declares its network once, as a ``Blueprint`` (``blueprint.py``): an ordered graph of blocks whose
parameters are fixed or tied to space dimensions. Everything else is derived from it by generic code, so the views
cannot drift apart:

    layers(arch, task)   exact LayerSpecs (params, MACs, size, memory, energy, the latency table)
    build(arch, task)    a plain nn.Module whose module names are the blueprint's node names
    graph(arch, task)    the op DAG (OpGraph) for the hypernetwork; node names are module names
    canonical(arch)      the representative of arch's network (dimensions no active block reads set to their first
                         value), so that one network is never evaluated twice
    supernet(task)       every tied dimension free: elastic blocks (a prefix of the largest weight) and mixed
                         choices, with ``set_active(arch)`` and ``extract(arch)`` (a plain module with copied weights)

A family that cannot describe its network as a blueprint (``BuilderFamily``: a user's own builder function) overrides
``build`` and ``layers`` instead, and the blueprint-only views say so in one line.

Recording and reloading: ``family.spec()`` is JSON, ``load_family(spec)`` rebuilds the family in a fresh process:
``{"name": "lenet", "config": {...}}`` for a registered family, ``{"import": "package.module:attr"}`` for a user's.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..cost.counts import costs
from ..cost.layers import LayerSpec
from ..errors import NasforgeError, SpaceError
from ..registry import Registry
from ..space import Arch, Space
from ..task import CIFAR10_TASK, MNIST_TASK, Task

if TYPE_CHECKING:  # torch enters only where tensors do
    from torch import nn

    from ..blueprint import Blueprint
    from ..graph import OpGraph

__all__ = [
    "CIFAR10_TASK", "MNIST_TASK", "FAMILIES", "Family", "Task", "create_family", "load_family", "register_family",
]  # fmt: skip


class Family:
    """A search space and its networks.

    Contract: ``build(arch, task)`` returns a freshly initialised ``nn.Module`` mapping a batch of
    ``input_shape(arch, task)`` inputs to ``task.num_classes`` logits; ``layers(arch, task)`` returns that module's
    layers with exact shapes, so that ``costs(layers)`` equals what ``FlopCounterMode`` and ``numel()`` measure on the
    built module. Both accept every arch of ``space`` and nothing else. Constructors only store their configuration.
    A subclass gives ``space`` and either ``blueprint(task)`` (preferred: every view is derived) or ``build`` and
    ``layers``. ``accepts(task)`` raises a one-line ``SpaceError`` for a task the family cannot take.
    """

    name: ClassVar[str] = ""  # set by ``register_family``
    # the task a family is usually searched for, used when no data set says otherwise
    default_task: ClassVar[Task | None] = None

    # --- what a subclass gives ----------------------------------------------------------------------------------
    @property
    def space(self) -> Space:
        raise NotImplementedError(f"family {type(self).__name__} must define its space")

    def blueprint(self, task: Task) -> Blueprint:
        """The network, declared once for ``task`` (cached by the caller; see ``_blueprint``)."""
        raise NasforgeError(f"family {self.name or type(self).__name__!r} has no blueprint")

    def config(self) -> dict[str, Any]:
        """The constructor arguments, so that ``create_family(name, **config())`` rebuilds this family."""
        return {}

    @classmethod
    def example_config(cls) -> dict[str, Any]:
        """Constructor arguments for a small instance (tiny networks), with which the family conformance tests
        check every registered family."""
        return {}

    def accepts(self, task: Task) -> None:
        """Raise a one-line ``SpaceError`` naming what the family needs when it cannot build networks for ``task``."""
        if self.has_blueprint:
            self._blueprint(task)  # blueprints check their task when they are declared

    @property
    def probe_task(self) -> Task:
        """A task to derive task-independent facts with (which dimensions a network reads): the default task, else
        3×32×32 images with 10 classes."""
        return self.default_task or CIFAR10_TASK

    def make_space(self, dims: Mapping[str, Any]) -> Space:
        """The family's space: ``dims`` with the family's canonical form, so that every arch the space makes (and so
        every arch a strategy proposes) is the one representative of its network."""
        return Space(dims, canonical=self._canonical_of_space, name=self.name)

    def _canonical_of_space(self, arch: Arch) -> Arch:
        if not self.has_blueprint:
            return arch
        return self._blueprint(self.probe_task).canonical(arch)

    def __getstate__(self) -> dict[str, Any]:
        # blueprints hold closures (their P functions) and are rebuilt on demand: a pickled family (sent to a worker
        # process) carries only its configuration
        return {k: v for k, v in self.__dict__.items() if k != "_bp_cache"}

    # --- derived views ------------------------------------------------------------------------------------------
    @property
    def has_blueprint(self) -> bool:
        return type(self).blueprint is not Family.blueprint

    def _blueprint(self, task: Task) -> Blueprint:
        cache = self.__dict__.setdefault("_bp_cache", {})
        bp = cache.get(task)
        if bp is None:
            bp = self.blueprint(task)
            bp.freeze(self.space)
            cache[task] = bp
        return bp

    def task_or_default(self, task: Task | None) -> Task:
        if task is not None:
            return task
        if self.default_task is None:
            raise SpaceError(f"family {self.name!r} has no default task: pass a task (input shape, classes)")
        return self.default_task

    def layers(self, arch: Mapping[str, Any], task: Task | None = None) -> list[LayerSpec]:
        return self._blueprint(self.task_or_default(task)).layers(self.space.validate(arch))

    def build(self, arch: Mapping[str, Any], task: Task | None = None) -> nn.Module:
        from ..blueprint.net import build

        return build(self._blueprint(self.task_or_default(task)), self.space.validate(arch))

    def graph(self, arch: Mapping[str, Any], task: Task | None = None) -> OpGraph:
        """The op DAG of the built network; node names are the built module's qualified module names."""
        return self._blueprint(self.task_or_default(task)).graph(self.space.validate(arch))

    def supernet(self, task: Task | None = None) -> nn.Module:
        """The weight-sharing network over the whole space (``set_active(arch)``, ``extract(arch)``)."""
        from ..blueprint.supernet import SuperNet

        return SuperNet(self._blueprint(self.task_or_default(task)))

    def input_shape(self, arch: Mapping[str, Any], task: Task | None = None) -> tuple[int, ...]:
        """The shape (without batch) the network of ``arch`` is costed at (mobilenet: the arch's resolution)."""
        task = self.task_or_default(task)
        if self.has_blueprint:
            return self._blueprint(task).input_shape_of(self.space.validate(arch))
        return tuple(task.input_shape)

    def canonical(self, arch: Mapping[str, Any]) -> Arch:
        """The representative of ``arch``'s network: equal for two archs exactly when they build the same network."""
        return self.space.canonical(arch)  # a family's space carries its canonical form (``make_space``)

    def network_key(self, arch: Mapping[str, Any]) -> str:
        return self.canonical(arch).key

    def features(self, arch: Mapping[str, Any]) -> np.ndarray:
        """A fixed-length encoding for predictors: the one-hot code of the canonical arch (equal networks, equal)."""
        return self.space.encode(self.canonical(arch))

    def describe(self, arch: Mapping[str, Any]) -> str:
        """A short readable form of an arch."""
        return " ".join(f"{k}={v}" for k, v in arch.items())

    def costs(self, arch: Mapping[str, Any], task: Task | None = None, bits: int = 32) -> dict[str, float]:
        return costs(self.layers(arch, task), bits=bits)

    def arch(self, values: Mapping[str, Any]) -> Arch:
        return self.space.validate(values)

    # --- identity across processes ------------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """JSON that ``load_family`` turns back into an equal family in a fresh process."""
        if self.name in FAMILIES and FAMILIES.get(self.name) is type(self):
            return {"name": self.name, "config": self.config()}
        # not reloadable: recorded so that show and report still work, while load_family says why it cannot
        return {"name": self.name or type(self).__name__, "loadable": False}


FAMILIES: Registry[type[Family]] = Registry("family")

register_family = FAMILIES.register


def create_family(name: str, **config: Any) -> Family:
    """Build the family registered as ``name``; ``create_family(f.name, **f.config())`` rebuilds ``f``."""
    return FAMILIES.create(name, **config)


def load_family(spec: Mapping[str, Any] | str) -> Family:
    """The family a ``Family.spec()`` describes (a registered name and config, or an import path ``mod:attr``).

    An import path names a ``Family`` instance or a function returning one; its module must be importable here (on
    ``sys.path`` or installed), which is what lets ``show``, ``report`` and ``export`` reopen a user's study.
    """
    if isinstance(spec, str):
        spec = {"import": spec} if ":" in spec else {"name": spec}
    if not isinstance(spec, Mapping):
        raise SpaceError(f"a family spec must be a mapping or a name, got {spec!r}")
    if "import" in spec:
        return _import_family(str(spec["import"]))
    if spec.get("loadable") is False:
        raise SpaceError(
            f"family {spec.get('name')!r} was neither registered nor given an import path, so it cannot be rebuilt "
            "here; register it with @register_family or give BuilderFamily(..., ref='package.module:attr')"
        )
    if "name" not in spec:
        raise SpaceError(f"a family spec needs a name or an import path, got {dict(spec)!r}")
    return create_family(str(spec["name"]), **dict(spec.get("config") or {}))


def _import_family(ref: str) -> Family:
    mod_name, _, attr = ref.partition(":")
    if not mod_name or not attr or mod_name == "__main__":
        raise SpaceError(
            f"cannot reload family {ref!r}: it must be 'package.module:attr' of an importable module (a family "
            "defined in a script run as __main__ cannot be found again; move it into a module)"
        )
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as e:
        raise SpaceError(f"cannot import the module of family {ref!r}: {e}; is it on PYTHONPATH?") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SpaceError(f"family {ref!r}: module {mod_name!r} has no {attr!r}") from None
    if not isinstance(obj, Family) and callable(obj):
        obj = obj()
    if not isinstance(obj, Family):
        raise SpaceError(f"{ref!r} is a {type(obj).__name__}, not a Family (or a function returning one)")
    return obj
