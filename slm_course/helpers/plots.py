"""Plots for notebooks: a loss curve that redraws itself while the training loop runs."""

from __future__ import annotations

from typing import Any


class LiveLossPlot:
    """A training-loop callback that redraws the loss curves in a notebook as training runs.

    Outside a notebook it only collects the numbers (``steps``, ``losses``, ``evals``).
    ``metric`` names the history entry drawn as the evaluation curve.
    """

    def __init__(self, title: str = "training", every: int = 100, log_y: bool = False,
                 metric: str = "val_loss"):
        self.title, self.every, self.log_y, self.metric = title, every, log_y, metric
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.evals: list[dict[str, float]] = []
        self._handle: Any = None
        self._last_drawn = -1

    def __call__(self, kind: str, state: Any) -> None:
        if kind == "step":
            self.steps.append(state.step)
            self.losses.append(state.last_loss)
            if state.step - self._last_drawn >= self.every:
                self.draw()
        elif kind == "eval" and state.history:
            self.evals.append(state.history[-1])
            self.draw()

    def figure(self) -> Any:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.5, 3.8))
        ax.plot(self.steps, self.losses, lw=1, alpha=0.6, label="train (batch)")
        points = [e for e in self.evals if self.metric in e]
        if points:
            ax.plot([e["step"] for e in points], [e[self.metric] for e in points], "o-",
                    label=self.metric.replace("_", " "))
        ax.set(xlabel="step", ylabel="loss", title=self.title)
        if self.log_y:
            ax.set_yscale("log")
        ax.legend()
        return fig

    def draw(self) -> None:
        self._last_drawn = self.steps[-1] if self.steps else 0
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return
        if get_ipython() is None:
            return
        import matplotlib.pyplot as plt

        fig = self.figure()
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)
