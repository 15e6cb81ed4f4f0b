"""Training loops in the library: :func:`fit`, its callbacks, history and progress.

>>> from nngraph_py import nn, optim, train                              # doctest: +SKIP
>>> history = train.fit(model, nn.MSECriterion(), optim.Adam(model, 0.01), batches, epochs=10,
...                     val=val_batches, callbacks=[train.ModelCheckpoint("runs/ck.npz",
...                     monitor="val_loss"), train.EarlyStopping(patience=3)])
"""
from .callbacks import (Callback, CSVLogger, EarlyStopping, GradientClipping, JSONLinesLogger,
                        LambdaCallback, LRSchedule, ModelCheckpoint, ReduceLROnPlateau,
                        TensorBoardLogger)
from .history import History, TrainState
from .loop import (Loop, NonFiniteError, TrainingError, TrainingInterrupted, fit, load_run,
                   nonfinite_count, rng_state, run_meta, save_run, set_rng_state)
from .progress import Progress

__all__ = [
    "fit", "Loop", "History", "TrainState", "Progress",
    "Callback", "ModelCheckpoint", "EarlyStopping", "ReduceLROnPlateau", "GradientClipping",
    "LRSchedule", "JSONLinesLogger", "CSVLogger", "TensorBoardLogger", "LambdaCallback",
    "NonFiniteError", "TrainingError", "TrainingInterrupted",
    "save_run", "load_run", "run_meta", "rng_state", "set_rng_state", "nonfinite_count",
]
