"""Seed ensembles of two towers whose scores are averaged, still one dot product (``model.members``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor, nn

from geotower.model.history import History
from geotower.model.spec import TowerSpec
from geotower.model.towers import TwoTower


class TowerEnsemble(nn.Module):
    """Independently trained two-tower members whose scores are averaged, still one dot product.

    Members differ only in their random seed (initialisation, ID dropout, batch order). Concatenating the members'
    retrieval embeddings (users scaled by 1 / members) makes ``user @ item`` the mean of the members' scores, so the
    index, the service and evaluation need nothing new. Averaging removes seed noise, which on the small real data
    sets is as large as the differences between settings (docs/quality.md).
    """

    def __init__(self, members: list[TwoTower]) -> None:
        super().__init__()
        # a ModuleList of TwoTower (registered as submodules); torch's stubs type its items as Module
        self.members: Sequence[TwoTower] = nn.ModuleList(members)  # type: ignore[assignment]
        self.spec = replace(members[0].spec, members=len(members))

    def _first(self) -> TwoTower:
        return self.members[0]

    @property
    def item_dense(self) -> Tensor:
        return self._first().item_dense

    @property
    def item_cells(self) -> Tensor:
        return self._first().item_cells

    @property
    def item_known(self) -> Tensor:
        return self._first().item_known

    def set_trend(self, table: Tensor | None, now: Tensor) -> None:
        for m in self.members:
            m.set_trend(table, now)

    def _mean(self, parts: list[Tensor]) -> Tensor:
        return torch.cat(parts, dim=1) / len(parts)

    def all_item_embeddings(self, chunk: int = 65536) -> Tensor:
        return torch.cat([m.all_item_embeddings(chunk) for m in self.members], dim=1)

    def user_embeddings(self, indptr: Tensor, hist_items: Tensor, hist_weights: Tensor | None,
                        chunk: int = 8192) -> Tensor:
        return self._mean([m.user_embeddings(indptr, hist_items, hist_weights, chunk) for m in self.members])

    def new_user_embeddings(self, hist: History, user_dense: Tensor) -> Tensor:
        return self._mean([m.new_user_embeddings(hist, user_dense) for m in self.members])

    def new_item_embeddings(self, dense: Tensor, cells: Tensor) -> Tensor:
        return torch.cat([m.new_item_embeddings(dense, cells) for m in self.members], dim=1)


def build_towers(spec: TowerSpec, item_dense: Tensor, item_cells: Tensor, user_dense: Tensor, item_known: Tensor
                 ) -> TwoTower | TowerEnsemble:
    """The model a saved spec describes: one :class:`TwoTower`, or an ensemble of ``spec.members`` of them."""
    if spec.members <= 1:
        return TwoTower(spec, item_dense, item_cells, user_dense, item_known)
    return TowerEnsemble([TwoTower(spec, item_dense, item_cells, user_dense, item_known)
                          for _ in range(spec.members)])
