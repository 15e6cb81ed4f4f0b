"""The ``nn`` namespace: every module, criterion and ``gModule`` (Lua's ``nn.``)."""
from ..graph.gmodule import gModule
from ..graph.node import Node
from ..module import Module
from .activation import LogSoftMax, ReLU, Sigmoid, SoftMax, Tanh
from .constant import AddConstant, MulConstant
from .cmul import CAdd, CMul
from .container import Concat, ConcatTable, Container, Parallel, ParallelTable, Sequential
from .convolution import (SpatialConvolution, SpatialConvolutionMM, SpatialDilatedConvolution,
                          SpatialFullConvolution, TemporalConvolution)
from .criteria import (AbsCriterion, BCECriterion, CosineEmbeddingCriterion, DistKLDivCriterion,
                       HingeEmbeddingCriterion, MarginCriterion, MarginRankingCriterion,
                       MultiCriterion, MultiLabelSoftMarginCriterion, MultiMarginCriterion,
                       ParallelCriterion, SmoothL1Criterion, SoftMarginCriterion, L1Cost,
                       WeightedMSECriterion)
from .criterion import (ClassNLLCriterion, Criterion, CrossEntropyCriterion, ModuleFromCriterion,
                        MSECriterion)
from .dropout import Dropout
from .embedding import LookupTable, OneHot
from .identity import Identity
from .just import JustElement, JustTable
from .linear import Linear
from .normalization import BatchNormalization, LayerNormalization, SpatialBatchNormalization
from .pooling import (PixelShuffle, SpatialAdaptiveAveragePooling, SpatialAveragePooling,
                      SpatialDilatedMaxPooling, SpatialMaxPooling, SpatialUpSamplingBilinear,
                      SpatialReflectionPadding, SpatialReplicationPadding,
                      SpatialUpSamplingNearest, SpatialZeroPadding, TemporalMaxPooling)
from .reduction import Max, Mean, Min, Sum
from .regularization import GradientReversal, L1Penalty, SpatialDropout, WhiteNoise
from .select import Select
from .selection import (Bottle, Collapse, Constant, Contiguous, Copy, Index, MaskedSelect,
                        Padding, Replicate, Squeeze, Transpose, Unsqueeze, ZeroGrad)
from .table_math import (MM, MV, CAveTable, CMaxTable, CMinTable, CosineDistance, DotProduct,
                         MixtureTable, PairwiseDistance)
from .table_structure import (CriterionTable, FlattenTable, MapTable, ZipTable,
                              ZipTableOneToMany)
from .transfer import (ELU, PReLU, ReLU6, Abs, Add, Bilinear, Clamp, Exp, GatedLinearUnit,
                       HardShrink, HardTanh, LeakyReLU, Log, LogSigmoid, Mul, Normalize, Power,
                       SoftMin, SoftPlus, SoftShrink, SoftSign, Sqrt, Square, Threshold, CReLU,
                       Euclidean, SpatialLogSoftMax, SpatialSoftMax, TanhShrink, Cosine)
from .shape import Narrow, Reshape, View
from .table import (CAddTable, CDivTable, CMulTable, CSubTable, JoinTable, NarrowTable,
                    SelectTable, SplitTable)

__all__ = [
    "Module", "Node", "gModule",
    "Linear", "Identity",
    "Sigmoid", "Tanh", "ReLU", "SoftMax", "LogSoftMax",
    "CAddTable", "CSubTable", "CMulTable", "CDivTable", "JoinTable", "SplitTable", "SelectTable",
    "NarrowTable",
    "Narrow", "Reshape", "View", "Select",
    "MulConstant", "AddConstant", "Dropout",
    "Container", "Sequential", "ConcatTable", "ParallelTable", "Parallel", "Concat",
    "CMul", "CAdd", "JustTable", "JustElement",
    "Criterion", "MSECriterion", "ClassNLLCriterion", "CrossEntropyCriterion",
    "ModuleFromCriterion",
    "LookupTable", "OneHot",
    "Abs", "Square", "Sqrt", "Power", "Exp", "Log", "Clamp", "HardTanh", "HardShrink",
    "SoftShrink", "SoftPlus", "SoftSign", "LogSigmoid", "SoftMin", "ELU", "LeakyReLU", "PReLU",
    "ReLU6", "Threshold", "GatedLinearUnit", "Normalize", "Mul", "Add", "Bilinear",
    "Sum", "Mean", "Max", "Min",
    "Replicate", "Transpose", "Squeeze", "Unsqueeze", "Padding", "Index", "MaskedSelect",
    "Contiguous", "Copy", "Bottle",
    "CMaxTable", "CMinTable", "CAveTable", "DotProduct", "CosineDistance", "PairwiseDistance",
    "MM", "MixtureTable", "MapTable", "FlattenTable", "CriterionTable",
    "BCECriterion", "AbsCriterion", "SmoothL1Criterion", "DistKLDivCriterion", "MarginCriterion",
    "SoftMarginCriterion", "MultiMarginCriterion", "MultiLabelSoftMarginCriterion",
    "HingeEmbeddingCriterion", "CosineEmbeddingCriterion", "MarginRankingCriterion",
    "MultiCriterion", "ParallelCriterion",
    "BatchNormalization", "SpatialBatchNormalization", "LayerNormalization",
    "SpatialDropout", "WhiteNoise", "L1Penalty", "GradientReversal",
    "TemporalConvolution", "SpatialConvolution", "SpatialMaxPooling", "SpatialAveragePooling",
    "SpatialZeroPadding", "SpatialUpSamplingNearest",
    "SpatialDilatedConvolution", "SpatialFullConvolution", "TemporalMaxPooling",
    "SpatialReflectionPadding", "SpatialReplicationPadding", "PixelShuffle", "SpatialSoftMax",
    "SpatialLogSoftMax", "CReLU", "Euclidean",
    "SpatialConvolutionMM", "SpatialDilatedMaxPooling", "MV", "ZipTable", "ZipTableOneToMany",
    "ZeroGrad", "Collapse", "Constant", "TanhShrink", "Cosine", "L1Cost", "WeightedMSECriterion",
    "SpatialAdaptiveAveragePooling", "SpatialUpSamplingBilinear",
]
