"""Adam for the dense weights and SparseAdam for a sparse user-ID table, behind one optimizer interface.

:class:`Adam` drives torch's own functional Adam kernel (``torch.optim.adam.adam``, fused): the same update and
state-dict layout as ``torch.optim.Adam``, without its ``step`` wrapper, which imports ``torch._dynamo`` on first
use (1.6 s of every ``geotower train`` process, more than a whole MovieLens epoch).

With many users, a dense Adam step reads and writes the whole user table (weights, gradient and two moments) on
every batch, and the dense embedding gradient is zero-filled first: on a 410k-user catalogue that was 75 % of a
step and made an epoch grow with users x rows. With ``sparse=True`` on the table, autograd produces the batch's
rows only and :class:`torch.optim.SparseAdam` updates just those rows (lazy Adam: the moments of rows not in a batch
are not decayed; no weight decay on that table).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch.optim.adam import adam as adam_update

__all__ = ["Adam", "MixedAdam", "OptimizerLike"]


class OptimizerLike(Protocol):
    """What the training loop and the checkpoints use of an optimizer (``torch.optim.Optimizer`` has it)."""

    def zero_grad(self, set_to_none: bool = ...) -> None: ...

    def step(self) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...

    @property
    def param_groups(self) -> list[dict[str, Any]]: ...


class Adam:
    """``torch.optim.Adam(groups, lr, weight_decay=..., fused=True)`` as a thin driver of the functional kernel.

    Args:
        groups: parameter groups (``{"params": [...], "lr": ..., "weight_decay": ...}``; missing keys take the
            defaults below).
        lr, weight_decay, betas, eps: as in ``torch.optim.Adam`` (L2 weight decay added to the gradient).

    The state dict is ``torch.optim.Adam``'s (``step``, ``exp_avg``, ``exp_avg_sq`` per parameter index), so either
    class resumes the other's checkpoints.
    """

    def __init__(self, groups: list[dict[str, Any]], lr: float, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        defaults = {"lr": lr, "weight_decay": weight_decay, "betas": betas, "eps": eps}
        self.param_groups = [{**defaults, **g, "params": list(g["params"])} for g in groups]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and not set_to_none:
                    p.grad.zero_()
                else:
                    p.grad = None

    def _state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        if p not in self.state:  # lazy, as torch.optim.Adam: a float32 step beside the parameter (fused kernel)
            self.state[p] = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                             "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
        return self.state[p]

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            states = [self._state(p) for p in params]
            beta1, beta2 = group["betas"]
            adam_update(params, [p.grad for p in params], [s["exp_avg"] for s in states],
                        [s["exp_avg_sq"] for s in states], [], [s["step"] for s in states], fused=True,
                        amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
                        eps=group["eps"], maximize=False)

    def state_dict(self) -> dict[str, Any]:
        index: dict[torch.Tensor, int] = {}
        groups = []
        for group in self.param_groups:
            ids = [index.setdefault(p, len(index)) for p in group["params"]]
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "amsgrad": False, "params": ids})
        state = {index[p]: dict(values) for p, values in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(len(g["params"]) != len(h["params"])
                                                         for g, h in zip(groups, self.param_groups, strict=True)):
            raise ValueError("optimizer state does not match the parameter groups")
        self.state = {}
        for saved, group in zip(groups, self.param_groups, strict=True):
            group.update({k: (tuple(v) if k == "betas" else v) for k, v in saved.items()
                          if k in ("lr", "initial_lr", "weight_decay", "betas", "eps")})
            for pid, p in zip(saved["params"], group["params"], strict=True):
                values = state_dict["state"].get(pid, state_dict["state"].get(str(pid)))
                if values:
                    self.state[p] = {"step": torch.as_tensor(values["step"], dtype=torch.float32).to(p.device)
                                     .reshape(()),
                                     "exp_avg": values["exp_avg"].to(p.device, p.dtype).clone(),
                                     "exp_avg_sq": values["exp_avg_sq"].to(p.device, p.dtype).clone()}


class MixedAdam:
    """``dense`` (an Adam) plus SparseAdam over ``sparse`` parameters, with one state dict.

    The state dict has the usual ``{"state": {index: {name: tensor}}, "param_groups": [...]}`` layout: the sparse
    optimizer's parameter indices follow the dense ones, and its integer step counts are stored as tensors, so
    checkpoints (which keep tensors only) and resume need nothing special.
    """

    def __init__(self, dense: torch.optim.Optimizer | Adam, sparse: list[torch.Tensor], lr: float) -> None:
        self.dense = dense
        self.sparse = torch.optim.SparseAdam(sparse, lr=lr)
        self._offset = sum(len(g["params"]) for g in dense.param_groups)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """Both optimizers' groups (the dense ones first), e.g. for a learning-rate schedule."""
        return [*self.dense.param_groups, *self.sparse.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.dense.zero_grad(set_to_none=set_to_none)
        self.sparse.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.dense.step()
        self.sparse.step()

    def state_dict(self) -> dict[str, Any]:
        d, s = self.dense.state_dict(), self.sparse.state_dict()
        state = dict(d["state"])
        for pid, values in s["state"].items():
            state[pid + self._offset] = {k: torch.as_tensor(float(v)) if k == "step" else v for k, v in values.items()}
        groups = [*d["param_groups"], *({**g, "params": [p + self._offset for p in g["params"]], "sparse": True}
                                        for g in s["param_groups"])]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        groups = state_dict["param_groups"]
        dense_groups = [g for g in groups if not g.get("sparse")]
        sparse_groups = [{k: v for k, v in g.items() if k != "sparse"} | {"params": [p - self._offset
                                                                                      for p in g["params"]]}
                         for g in groups if g.get("sparse")]
        dense_state = {pid: v for pid, v in state_dict["state"].items() if int(pid) < self._offset}
        sparse_state = {int(pid) - self._offset: {k: int(v.item()) if k == "step" else v for k, v in values.items()}
                        for pid, values in state_dict["state"].items() if int(pid) >= self._offset}
        self.dense.load_state_dict({"state": dense_state, "param_groups": dense_groups})
        self.sparse.load_state_dict({"state": sparse_state, "param_groups": sparse_groups})
