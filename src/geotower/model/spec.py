"""The tower sizes and flags of a run, derived from :class:`~geotower.config.ModelConfig` by field name and saved
as ``model.json`` beside the weights (everything needed to rebuild the towers)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from geotower.config import ModelConfig

__all__ = ["TowerSpec"]

_M = ModelConfig()  # the one source of the tower defaults


@dataclass
class TowerSpec:
    """Everything needed to rebuild a :class:`TwoTower` (saved as ``model.json``)."""

    n_items: int
    n_users: int
    item_dense_dim: int
    user_dense_dim: int
    cell_vocab_sizes: list[int] = field(default_factory=list)
    cell_dim: int = _M.cell_dim
    embed_dim: int = _M.embed_dim
    hidden_dim: int = _M.hidden_dim
    n_layers: int = _M.n_layers
    dropout: float = _M.dropout
    use_item_id: bool = _M.use_item_id
    use_user_id: bool = _M.use_user_id
    use_item_features: bool = _M.use_item_features
    use_history: bool = _M.use_history
    id_dropout: float = _M.id_dropout
    normalize: bool = _M.normalize
    temperature: float = _M.temperature
    trend_dim: int = 0  # number of trend half-lives (0 = no time-decayed popularity prior)
    members: int = _M.members  # independently trained copies whose scores are averaged (see TowerEnsemble)
    item_bias: bool = _M.item_bias  # a learned per-item score offset (popularity the unit sphere cannot express)
    # sparse gradients for the user-ID table (many users): a step then touches the batch's rows only, not the whole
    # table (zero-filling and Adam over 410k x 128 floats were 75 % of a step at 1/4 of full Yelp size)
    sparse_user_ids: bool = False
    # the same for the item-side tables (item IDs, grid cells) of a large catalogue: at full Yelp size (152k
    # places) their dense gradients and Adam made a step 0.43 s
    sparse_item_ids: bool = False

    @classmethod
    def from_config(cls, m: ModelConfig, **sizes: Any) -> TowerSpec:
        """The spec of ``m``: every field named like a :class:`ModelConfig` key is taken from it; ``sizes`` give
        the data-dependent rest (``n_items``, ``n_users``, ``item_dense_dim``, ``user_dense_dim``,
        ``cell_vocab_sizes``, ``trend_dim``)."""
        shared = {f.name: getattr(m, f.name) for f in fields(cls) if hasattr(m, f.name)}
        return cls(**shared, **sizes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TowerSpec:
        return cls(**d)
