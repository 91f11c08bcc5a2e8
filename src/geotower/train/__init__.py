"""Train (layer L2): the setup every stage reads, sampling and batches, the loop, callbacks, resume and DDP.

The public names below load their module on first use (:mod:`geotower._lazy`), so importing the package is cheap.
"""

from geotower._lazy import lazy_exports

_HOMES: dict[str, tuple[str, ...]] = {
    "setup": ("TrainSetup", "new_model", "sparse_user_ids", "train_fixed"),
    "loop": ("LoopState", "fit"),
    "sampling": ("make_sampler", "train_data"),
    "batches": ("BatchSampler", "TrainData"),
    "callbacks": ("Checkpointer", "TensorBoardLogger"),
    "resume": ("fresh_or_resume",),
    "distributed": ("Dist",),
    "optim": ("MixedAdam", "OptimizerLike"),
}

__all__ = [
    "BatchSampler", "Checkpointer", "Dist", "LoopState", "MixedAdam", "OptimizerLike", "TensorBoardLogger",
    "TrainData", "TrainSetup", "batches", "callbacks", "distributed", "fit", "fresh_or_resume", "loop",
    "make_sampler", "new_model", "optim", "resume", "sampling", "setup", "sparse_user_ids", "train_data",
    "train_fixed",
]

__getattr__ = lazy_exports(__name__, _HOMES)
