"""Weight inheritance: train a child from its trained parent's morphed weights (Net2Net; EAS, Cai et al. 2018; NASH,
Elsken et al. 2018), else from scratch.

The parent is the *nearest trained arch the child can be morphed from*: archs are searched outward from the child,
one step at a time, each step moving one numeric dimension to its next smaller value (a narrower layer, a shallower
stage, a smaller expand ratio or kernel); distance = the number of steps. At each distance, in the space's dimension
order, the first arch that has saved weights in this study (``ctx.artifacts``, found by arch key) and that
``nasforge.morph.morph`` accepts (a function-preserving wider/deeper move) is the parent. The search stops at
``max_distance`` steps or after ``max_lookups`` store look-ups; nothing found means training from scratch. So a study
resumed with more trials stored may pick another parent: the choice depends on what is trained, not on the order.

A child with a parent trains ``epochs`` epochs (fewer) from the morphed weights, with small symmetry-breaking
``noise`` on the copied units (0 keeps the parent's function exactly, but then copies get identical gradients and
never diverge: Chen et al., 2016, section 2.3); one without trains ``scratch_epochs`` from scratch. Either way the
training is ``TrainEvaluator``'s (any of its settings can be given), and the result reports ``inherited_from`` (the
parent's trial number, or -1) and ``start_val_acc`` (validation accuracy before the first step: the parent's, for a
child that inherits).

Outside a study (``ctx.artifacts`` None) every arch trains from scratch. A worker process that cannot reach the store
(an in-memory database) fails the trial with the store's one-line error rather than silently training from scratch.
"""

from __future__ import annotations

from typing import Any

from ..errors import NasforgeError
from ..space import Arch
from ..spaces.base import Family
from ..strategies.base import setting
from ..strategies.morph_evolution import step
from .base import Context, Evaluator, register_evaluator
from .train import TrainEvaluator, accuracy


@register_evaluator("inherit")
class InheritEvaluator(Evaluator):
    """See the module docstring. ``train`` holds ``TrainEvaluator`` settings (optimizer, lr, batch_size, ...)."""

    default_objectives = ("maximize val_acc",)

    def __init__(self, family: Family, dataset: Any = "mnist", *, data_dir: str | None = None, epochs: int = 1,
                 scratch_epochs: int = 2, noise: float = 0.01, max_distance: int = 3, max_lookups: int = 500,
                 **train: Any) -> None:  # fmt: skip
        who = "inherit evaluator"
        self.family = family
        self.epochs = setting(who, "epochs", epochs, int, 1)
        self.noise = setting(who, "noise", noise, float, 0)
        self.max_distance = setting(who, "max_distance", max_distance, int, 1)
        self.max_lookups = setting(who, "max_lookups", max_lookups, int, 1)
        try:
            self.trainer = TrainEvaluator(family, dataset, data_dir=data_dir, epochs=scratch_epochs, **train)
        except TypeError:
            import inspect

            known = [p for p in inspect.signature(TrainEvaluator).parameters if p not in ("family", "dataset")]
            raise NasforgeError(f"{who}: unknown setting among {sorted(train)}; it takes epochs, scratch_epochs, "
                                f"noise, max_distance, max_lookups and {', '.join(known)}") from None  # fmt: skip

    def config(self) -> dict[str, Any]:
        return {**self.trainer.config(), "epochs": self.epochs, "scratch_epochs": self.trainer.epochs,
                "noise": self.noise, "max_distance": self.max_distance, "max_lookups": self.max_lookups}  # fmt: skip

    @property
    def metrics(self) -> tuple[str, ...]:  # type: ignore[override]
        return (*self.trainer.metrics, "inherited_from", "start_val_acc")

    def task(self):
        return self.trainer.task()

    def __call__(self, arch: Arch, ctx: Context) -> dict[str, float]:
        import torch

        task = self.trainer.task()
        found = self.find_parent(arch, ctx)
        if found is None:
            torch.manual_seed(ctx.seed)  # the initialisation ``fit`` makes: the start is the fresh network's
            init, number, epochs = self.family.build(arch, task).state_dict(), -1, None
        else:
            number, model = found
            init, epochs = model.state_dict(), self.epochs
        data = self.trainer.data()
        start = self.family.build(arch, task)
        start.load_state_dict(init)
        start_acc = accuracy(start.to(data.x_val.device), data.x_val, data.y_val)[0]
        out = self.trainer.fit(arch, ctx, init=init, epochs=epochs)
        return {**out, "inherited_from": float(number), "start_val_acc": start_acc}

    # --- the parent ---------------------------------------------------------------------------------------------
    def find_parent(self, arch: Arch, ctx: Context):
        """(trial number, the child's network with the morphed weights) of the nearest trained parent, or None."""
        from ..morph import morph
        from ..nn.morph import MorphError

        if ctx.artifacts is None:
            return None
        store, study = ctx.artifacts._store(), ctx.artifacts.key.study
        for lookups, cand in enumerate(self.candidates(arch)):
            if lookups >= self.max_lookups:
                return None
            key = store.find(study, cand.key)
            if key is None or key.number == ctx.artifacts.key.number:
                continue
            state = ctx.artifacts.load("model.pt", arch_key=cand.key)
            try:
                return key.number, morph(self.family, cand, state, arch, self.trainer.task(), seed=ctx.seed,
                                         noise=self.noise)  # fmt: skip
            except MorphError:
                continue  # trained, but not a function-preserving ancestor (a smaller kernel, another resolution)
        return None

    def candidates(self, arch: Arch):
        """Archs one, two, ... ``max_distance`` steps smaller than ``arch`` (canonical, each once), nearest first."""
        space = self.family.space
        start = space.canonical(space.validate(arch))
        seen, frontier = {start.key}, [start]
        for _ in range(self.max_distance):
            nxt = []
            for a in frontier:
                for k in space.names:
                    smaller = step(space.dims[k].values, a[k], -1)
                    if smaller is None:
                        continue
                    b = space.validate({**a, k: smaller})
                    if b.key not in seen:
                        seen.add(b.key)
                        nxt.append(b)
                        yield b
            frontier = nxt

