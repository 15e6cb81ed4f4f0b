"""Per-time-step clones that share parameters: :mod:`nngraph_py.clones` (the engine's, used by the
graph compiler and the recurrent layers alike), re-exported under its historical name."""
from nngraph_py.clones import clone_many_times, clone_module, clone_sharing, share_parameters

__all__ = ["clone_module", "clone_sharing", "clone_many_times", "share_parameters"]
