"""Named registries: the single place where a YAML name becomes a class or value.

Lookups are case-insensitive and ignore underscores, so ``Adam``, ``adam``,
``max_pooling2d`` and ``MaxPooling2D`` all resolve; the canonical spelling is
what the resolved config records. An unknown name gets a did-you-mean.

Built-in entries are ``"module:attribute"`` strings, imported the first time
they are looked up: this module imports nothing of kerascli, so nothing that
registers can form an import cycle with it, and a run imports only what its
config names. Plugins (kerascli.plugins) add entries with their source
recorded; a name taken by another source is refused naming both.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

BUILT_IN = "built-in"


def _fold(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


class UnknownName(LookupError):
    def __init__(self, kind: str, name: str, valid: list[str]):
        self.kind, self.name, self.valid = kind, name, valid
        close = _typo_of(name, valid)
        close = close or difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
        if not close:
            folded = {_fold(v): v for v in valid}
            close = [folded[m] for m in difflib.get_close_matches(_fold(name), list(folded), n=1, cutoff=0.5)]
        hint = f"; did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}{hint} (valid: {', '.join(valid)})")


def _typo_of(name: str, valid: list[str]) -> list[str]:
    """The valid name one typo away (a letter wrong, missing, extra, or two swapped: 'adma' is 'adam', not
    'adamax', which difflib would rank first), if exactly one is."""
    near = [v for v in valid if _edits(_fold(name), _fold(v)) == 1]
    return near if len(near) == 1 else []


def _edits(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[i - 2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


class NameClash(ValueError):
    """A name (or alias) registered by two different sources."""


@dataclass
class Entry:
    target: Any  # the object, or "module:attribute" until first use
    source: str  # BUILT_IN or a plugin's description
    aliases: tuple = ()

    def resolve(self) -> Any:
        if isinstance(self.target, str) and ":" in self.target and self.source == BUILT_IN:
            module, attr = self.target.split(":")
            self.target = getattr(importlib.import_module(module), attr)
        return self.target


class Registry:
    def __init__(self, kind: str, builtins: tuple = ()):
        self.kind = kind
        self._items: dict[str, Entry] = {}  # canonical name -> entry
        self._lookup: dict[str, str] = {}  # folded name or alias -> canonical name
        for name, target, *aliases in builtins:
            self.add(name, target, *aliases)

    def register(self, name: str, *aliases: str, source: str = BUILT_IN) -> Callable[[Any], Any]:
        def decorator(item: Any) -> Any:
            self.add(name, item, *aliases, source=source)
            return item

        return decorator

    def add(self, name: str, item: Any, *aliases: str, source: str = BUILT_IN) -> None:
        """Register ``item`` under ``name`` and ``aliases``. The same source may register a name again (a
        plugin imported anew replaces its own entries); another source may not."""
        for key in (name, *aliases):
            owner = self._lookup.get(_fold(key))
            if owner is not None and self._items[owner].source != source:
                raise NameClash(f"{self.kind} {key!r} is already registered by {self._items[owner].source} "
                                f"(as {owner!r}); {source} registers it again")
        if name in self._items:
            self.remove(name)
        self._items[name] = Entry(item, source, aliases)
        for key in (name, *aliases):
            self._lookup[_fold(key)] = name

    def remove(self, name: str) -> None:
        entry = self._items.pop(name)
        for key in (name, *entry.aliases):
            if self._lookup.get(_fold(key)) == name:
                del self._lookup[_fold(key)]

    def canonical(self, name: str) -> str:
        if not isinstance(name, str) or _fold(name) not in self._lookup:
            raise UnknownName(self.kind, str(name), self.names())
        return self._lookup[_fold(name)]

    def get(self, name: str) -> Any:
        return self._items[self.canonical(name)].resolve()

    def source(self, name: str) -> str:
        return self._items[self.canonical(name)].source

    def names(self) -> list[str]:
        return list(self._items)

    def builtin_names(self) -> list[str]:
        return [name for name, entry in self._items.items() if entry.source == BUILT_IN]

    def items(self) -> Iterator[tuple[str, Any]]:
        return ((name, entry.resolve()) for name, entry in list(self._items.items()))

    def __contains__(self, name: str) -> bool:
        return isinstance(name, str) and _fold(name) in self._lookup


LAYERS = Registry("layer type", (
    ("Dense", "kerascli.layers.core:Dense"),
    ("Activation", "kerascli.layers.core:Activation"),
    ("Dropout", "kerascli.layers.core:Dropout"),
    ("SpatialDropout1D", "kerascli.layers.core:SpatialDropout1D"),
    ("SpatialDropout2D", "kerascli.layers.core:SpatialDropout2D"),
    ("GaussianNoise", "kerascli.layers.core:GaussianNoise"),
    ("GaussianDropout", "kerascli.layers.core:GaussianDropout"),
    ("AlphaDropout", "kerascli.layers.core:AlphaDropout"),
    ("EinsumDense", "kerascli.layers.einsum:EinsumDense"),
    ("Flatten", "kerascli.layers.core:Flatten"),
    ("Reshape", "kerascli.layers.core:Reshape"),
    ("Rescaling", "kerascli.layers.core:Rescaling"),
    ("Conv2D", "kerascli.layers.conv:Conv2D", "Convolution2D"),
    ("Conv1D", "kerascli.layers.conv:Conv1D", "Convolution1D"),
    ("Conv2DTranspose", "kerascli.layers.conv:Conv2DTranspose", "Convolution2DTranspose"),
    ("DepthwiseConv2D", "kerascli.layers.conv:DepthwiseConv2D"),
    ("SeparableConv2D", "kerascli.layers.conv:SeparableConv2D", "SeparableConvolution2D"),
    ("SeparableConv1D", "kerascli.layers.conv:SeparableConv1D", "SeparableConvolution1D"),
    ("MaxPooling1D", "kerascli.layers.pooling:MaxPooling1D", "MaxPool1D"),
    ("AveragePooling1D", "kerascli.layers.pooling:AveragePooling1D", "AvgPool1D"),
    ("GlobalAveragePooling1D", "kerascli.layers.pooling:GlobalAveragePooling1D", "GlobalAvgPool1D"),
    ("GlobalMaxPooling1D", "kerascli.layers.pooling:GlobalMaxPooling1D", "GlobalMaxPool1D"),
    ("ZeroPadding1D", "kerascli.layers.pooling:ZeroPadding1D"),
    ("Cropping1D", "kerascli.layers.pooling:Cropping1D"),
    ("UpSampling1D", "kerascli.layers.pooling:UpSampling1D"),
    ("MaxPooling2D", "kerascli.layers.pooling:MaxPooling2D", "MaxPool2D"),
    ("AveragePooling2D", "kerascli.layers.pooling:AveragePooling2D", "AvgPool2D"),
    ("BatchNormalization", "kerascli.layers.normalization:BatchNormalization"),
    ("LayerNormalization", "kerascli.layers.normalization:LayerNormalization"),
    ("GroupNormalization", "kerascli.layers.normalization:GroupNormalization"),
    ("UnitNormalization", "kerascli.layers.normalization:UnitNormalization"),
    ("Normalization", "kerascli.layers.normalization:Normalization"),
    ("Add", "kerascli.layers.merge:Add"),
    ("Subtract", "kerascli.layers.merge:Subtract"),
    ("Multiply", "kerascli.layers.merge:Multiply"),
    ("Average", "kerascli.layers.merge:Average"),
    ("Maximum", "kerascli.layers.merge:Maximum"),
    ("Minimum", "kerascli.layers.merge:Minimum"),
    ("Concatenate", "kerascli.layers.merge:Concatenate"),
    ("Dot", "kerascli.layers.merge:Dot"),
    ("GlobalAveragePooling2D", "kerascli.layers.pooling:GlobalAveragePooling2D", "GlobalAvgPool2D"),
    ("GlobalMaxPooling2D", "kerascli.layers.pooling:GlobalMaxPooling2D", "GlobalMaxPool2D"),
    ("Identity", "kerascli.layers.core:Identity"),
    ("Masking", "kerascli.layers.core:Masking"),
    ("Permute", "kerascli.layers.core:Permute"),
    ("RepeatVector", "kerascli.layers.core:RepeatVector"),
    ("ZeroPadding2D", "kerascli.layers.pooling:ZeroPadding2D"),
    ("Cropping2D", "kerascli.layers.pooling:Cropping2D"),
    ("UpSampling2D", "kerascli.layers.pooling:UpSampling2D"),
    ("ReLU", "kerascli.layers.activations:ReLU"),
    ("LeakyReLU", "kerascli.layers.activations:LeakyReLU"),
    ("PReLU", "kerascli.layers.activations:PReLU"),
    ("ELU", "kerascli.layers.activations:ELU"),
    ("Softmax", "kerascli.layers.activations:Softmax"),
    ("Embedding", "kerascli.layers.core:Embedding"),
    ("SimpleRNN", "kerascli.layers.recurrent:SimpleRNN"),
    ("LSTM", "kerascli.layers.recurrent:LSTM"),
    ("GRU", "kerascli.layers.recurrent:GRU"),
    ("Bidirectional", "kerascli.layers.wrappers:Bidirectional"),
    ("TimeDistributed", "kerascli.layers.wrappers:TimeDistributed"),
    ("MultiHeadAttention", "kerascli.layers.attention:MultiHeadAttention"),
    ("Attention", "kerascli.layers.attention:Attention"),
    ("AdditiveAttention", "kerascli.layers.attention:AdditiveAttention"),
))
ACTIVATIONS = Registry("activation", (  # values are the activation table's codes (kerascli.ops.contract)
    ("linear", "kerascli.ops.contract:LINEAR", "none"),
    ("relu", "kerascli.ops.contract:RELU"),
    ("sigmoid", "kerascli.ops.contract:SIGMOID"),
    ("tanh", "kerascli.ops.contract:TANH"),
    ("softmax", "kerascli.ops.contract:SOFTMAX"),
    ("relu6", "kerascli.ops.contract:RELU6"),
    ("leaky_relu", "kerascli.ops.contract:LEAKY_RELU"),
    ("elu", "kerascli.ops.contract:ELU"),
    ("selu", "kerascli.ops.contract:SELU"),
    ("softplus", "kerascli.ops.contract:SOFTPLUS"),
    ("softsign", "kerascli.ops.contract:SOFTSIGN"),
    ("hard_sigmoid", "kerascli.ops.contract:HARD_SIGMOID"),
    ("exponential", "kerascli.ops.contract:EXPONENTIAL"),
    ("gelu", "kerascli.ops.contract:GELU"),
    ("gelu_approximate", "kerascli.ops.contract:GELU_APPROXIMATE"),
    ("silu", "kerascli.ops.contract:SILU", "swish"),
    ("mish", "kerascli.ops.contract:MISH"),
    ("hard_silu", "kerascli.ops.contract:HARD_SILU", "hard_swish"),
    ("log_softmax", "kerascli.ops.contract:LOG_SOFTMAX"),
))
LOSSES = Registry("loss", (
    ("categorical_crossentropy", "kerascli.losses:CategoricalCrossentropy", "CategoricalCrossentropy", "cce"),
    ("sparse_categorical_crossentropy", "kerascli.losses:SparseCategoricalCrossentropy",
     "SparseCategoricalCrossentropy", "scce"),
    ("binary_crossentropy", "kerascli.losses:BinaryCrossentropy", "BinaryCrossentropy", "bce"),
    ("mean_squared_error", "kerascli.losses:MeanSquaredError", "MeanSquaredError", "mse"),
    ("mean_absolute_error", "kerascli.losses:MeanAbsoluteError", "MeanAbsoluteError", "mae"),
    ("mean_absolute_percentage_error", "kerascli.losses:MeanAbsolutePercentageError",
     "MeanAbsolutePercentageError", "mape"),
    ("mean_squared_logarithmic_error", "kerascli.losses:MeanSquaredLogarithmicError",
     "MeanSquaredLogarithmicError", "msle"),
    ("huber", "kerascli.losses:Huber", "Huber"),
    ("log_cosh", "kerascli.losses:LogCosh", "LogCosh", "logcosh"),
    ("poisson", "kerascli.losses:Poisson", "Poisson"),
    ("kl_divergence", "kerascli.losses:KLDivergence", "KLDivergence", "kld", "kullback_leibler_divergence"),
    ("hinge", "kerascli.losses:Hinge", "Hinge"),
    ("squared_hinge", "kerascli.losses:SquaredHinge", "SquaredHinge"),
    ("categorical_hinge", "kerascli.losses:CategoricalHinge", "CategoricalHinge"),
    ("cosine_similarity", "kerascli.losses:CosineSimilarity", "CosineSimilarity"),
    ("binary_focal_crossentropy", "kerascli.losses:BinaryFocalCrossentropy", "BinaryFocalCrossentropy"),
    ("categorical_focal_crossentropy", "kerascli.losses:CategoricalFocalCrossentropy",
     "CategoricalFocalCrossentropy"),
    ("tversky", "kerascli.losses:Tversky", "Tversky"),
    ("dice", "kerascli.losses:Dice", "Dice"),
))
METRICS = Registry("metric", (
    ("accuracy", "kerascli.metrics:Accuracy", "acc"),  # its kind follows the loss, as in Keras
    ("categorical_accuracy", "kerascli.metrics:CategoricalAccuracy"),
    ("sparse_categorical_accuracy", "kerascli.metrics:SparseCategoricalAccuracy"),
    ("binary_accuracy", "kerascli.metrics:BinaryAccuracy"),
    ("mean_absolute_error", "kerascli.metrics:MeanAbsoluteError", "mae"),
    ("mean_squared_error", "kerascli.metrics:MeanSquaredErrorMetric", "mse"),
    ("top_k_categorical_accuracy", "kerascli.metrics:TopKCategoricalAccuracy"),
    ("sparse_top_k_categorical_accuracy", "kerascli.metrics:SparseTopKCategoricalAccuracy"),
    ("precision", "kerascli.metrics:Precision"),
    ("recall", "kerascli.metrics:Recall"),
    ("auc", "kerascli.metrics:AUC", "AUC"),
    ("root_mean_squared_error", "kerascli.metrics:RootMeanSquaredError", "rmse"),
    ("r2_score", "kerascli.metrics:R2Score", "R2Score"),
    ("mean_absolute_percentage_error", "kerascli.metrics:MeanAbsolutePercentageError", "mape"),
    ("mean_squared_logarithmic_error", "kerascli.metrics:MeanSquaredLogarithmicError", "msle"),
    ("logcosh", "kerascli.metrics:LogCoshError", "log_cosh", "log_cosh_error"),
    ("poisson", "kerascli.metrics:PoissonMetric"),
    ("kl_divergence", "kerascli.metrics:KLDivergenceMetric", "kld"),
    ("hinge", "kerascli.metrics:HingeMetric"),
    ("squared_hinge", "kerascli.metrics:SquaredHingeMetric"),
    ("cosine_similarity", "kerascli.metrics:CosineSimilarity"),
    ("f1_score", "kerascli.metrics:F1Score", "F1Score"),
    ("fbeta_score", "kerascli.metrics:FBetaScore", "FBetaScore"),
    ("classification_report", "kerascli.metrics:ClassificationReport"),
    ("sensitivity_at_specificity", "kerascli.metrics:SensitivityAtSpecificity", "SensitivityAtSpecificity"),
    ("specificity_at_sensitivity", "kerascli.metrics:SpecificityAtSensitivity", "SpecificityAtSensitivity"),
    ("precision_at_recall", "kerascli.metrics:PrecisionAtRecall", "PrecisionAtRecall"),
    ("recall_at_precision", "kerascli.metrics:RecallAtPrecision", "RecallAtPrecision"),
    ("mean_iou", "kerascli.metrics:MeanIoU", "MeanIoU"),
))
OPTIMIZERS = Registry("optimizer", (
    ("sgd", "kerascli.optimizers:SGD", "SGD"),
    ("adam", "kerascli.optimizers:Adam", "Adam"),
    ("adamw", "kerascli.optimizers:AdamW", "AdamW"),
    ("rmsprop", "kerascli.optimizers:RMSprop", "RMSprop"),
    ("adagrad", "kerascli.optimizers:Adagrad", "Adagrad"),
    ("adamax", "kerascli.optimizers:Adamax", "Adamax"),
    ("nadam", "kerascli.optimizers:Nadam", "Nadam"),
    ("lion", "kerascli.optimizers:Lion", "Lion"),
    ("adadelta", "kerascli.optimizers:Adadelta", "Adadelta"),
    ("ftrl", "kerascli.optimizers:Ftrl", "Ftrl"),
    ("adafactor", "kerascli.optimizers:Adafactor", "Adafactor"),
))
SCHEDULES = Registry("learning rate schedule", (
    ("ExponentialDecay", "kerascli.schedules:ExponentialDecay"),
    ("InverseTimeDecay", "kerascli.schedules:InverseTimeDecay"),
    ("PiecewiseConstantDecay", "kerascli.schedules:PiecewiseConstantDecay"),
    ("PolynomialDecay", "kerascli.schedules:PolynomialDecay"),
    ("CosineDecay", "kerascli.schedules:CosineDecay"),
    ("CosineDecayRestarts", "kerascli.schedules:CosineDecayRestarts"),
))
INITIALIZERS = Registry("initializer", (
    ("glorot_uniform", "kerascli.initializers:GlorotUniform", "GlorotUniform", "xavier_uniform"),
    ("glorot_normal", "kerascli.initializers:GlorotNormal", "GlorotNormal", "xavier_normal"),
    ("he_uniform", "kerascli.initializers:HeUniform", "HeUniform"),
    ("he_normal", "kerascli.initializers:HeNormal", "HeNormal"),
    ("lecun_uniform", "kerascli.initializers:LecunUniform", "LecunUniform"),
    ("lecun_normal", "kerascli.initializers:LecunNormal", "LecunNormal"),
    ("variance_scaling", "kerascli.initializers:VarianceScaling", "VarianceScaling"),
    ("random_normal", "kerascli.initializers:RandomNormal", "RandomNormal", "normal"),
    ("random_uniform", "kerascli.initializers:RandomUniform", "RandomUniform", "uniform"),
    ("truncated_normal", "kerascli.initializers:TruncatedNormal", "TruncatedNormal"),
    ("orthogonal", "kerascli.initializers:Orthogonal", "Orthogonal"),
    ("identity", "kerascli.initializers:Identity", "Identity", "IdentityInitializer"),
    ("constant", "kerascli.initializers:Constant", "Constant"),
    ("zeros", "kerascli.initializers:Zeros", "Zeros"),
    ("ones", "kerascli.initializers:Ones", "Ones"),
))
REGULARIZERS = Registry("regularizer", (
    ("l1", "kerascli.regularizers:L1", "L1"),
    ("l2", "kerascli.regularizers:L2", "L2"),
    ("l1_l2", "kerascli.regularizers:L1L2", "L1L2", "l1l2"),
    ("orthogonal_regularizer", "kerascli.regularizers:OrthogonalRegularizer", "OrthogonalRegularizer",
     "orthogonal"),
))
CONSTRAINTS = Registry("constraint", (
    ("max_norm", "kerascli.constraints:MaxNorm", "MaxNorm"),
    ("min_max_norm", "kerascli.constraints:MinMaxNorm", "MinMaxNorm"),
    ("non_neg", "kerascli.constraints:NonNeg", "NonNeg"),
    ("unit_norm", "kerascli.constraints:UnitNorm", "UnitNorm"),
))
DATASETS = Registry("dataset", (
    ("digits", "kerascli.data.datasets:Digits"),
    ("mnist", "kerascli.data.datasets:Mnist"),
    ("fashion_mnist", "kerascli.data.datasets:FashionMnist"),
    ("cifar10", "kerascli.data.cifar:Cifar10"),
    ("cifar100", "kerascli.data.cifar:Cifar100"),
    ("imdb", "kerascli.data.sequences:Imdb"),
    ("reuters", "kerascli.data.sequences:Reuters"),
    ("boston_housing", "kerascli.data.datasets:BostonHousing"),
    ("california_housing", "kerascli.data.datasets:CaliforniaHousing"),
    ("synthetic_classification", "kerascli.data.datasets:SyntheticClassification"),
    ("synthetic_regression", "kerascli.data.datasets:SyntheticRegression"),
    ("synthetic_sequences", "kerascli.data.datasets:SyntheticSequences"),
    ("npz", "kerascli.data.datasets:NpzFile"),
    ("npy", "kerascli.data.datasets:NpyPair"),
    ("idx", "kerascli.data.datasets:IdxFiles"),
    ("csv", "kerascli.data.datasets:CsvFile"),
    ("images", "kerascli.data.images:ImageFolder"),
))
CALLBACKS = Registry("callback", (  # progress, metrics and checkpoints come from train/checkpoint keys
    ("EarlyStopping", "kerascli.keras_callbacks:EarlyStopping"),
    ("ReduceLROnPlateau", "kerascli.keras_callbacks:ReduceLROnPlateau"),
    ("LearningRateScheduler", "kerascli.keras_callbacks:LearningRateScheduler"),
    ("ModelCheckpoint", "kerascli.keras_callbacks:ModelCheckpoint"),
    ("CSVLogger", "kerascli.keras_callbacks:CSVLogger"),
    ("TerminateOnNaN", "kerascli.keras_callbacks:TerminateOnNaN"),
    ("TensorBoard", "kerascli.keras_callbacks:TensorBoard"),
))

REGISTRIES = (LAYERS, ACTIVATIONS, LOSSES, METRICS, OPTIMIZERS, SCHEDULES, INITIALIZERS, REGULARIZERS, CONSTRAINTS,
              DATASETS, CALLBACKS)


def load_builtins() -> None:
    """Resolve every built-in entry now (tests and docs that list everything; a run does not need it)."""
    for registry in REGISTRIES:
        for _ in registry.items():
            pass
