"""Export models to ONNX (``nngraph_py.onnx.export(model, example_input, path)``).

Needs the optional ``onnx`` package (``pip install 'nngraph_py[onnx]'``); ``onnxruntime`` runs
the exported files (the tests compare its outputs with the model's).
"""
from .export import OPSET, OnnxExportError, export

__all__ = ["export", "OnnxExportError", "OPSET"]
