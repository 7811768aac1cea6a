import os
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")


@pytest.fixture
def write_config(tmp_path):
    """Write YAML text (dedented) to a file and return its path."""

    def write(text: str, name: str = "config.yaml") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return str(path)

    return write


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


SMALL_MLP = """
name: small
seed: 3
data: {dataset: synthetic_classification, samples: 120, features: 6, classes: 3, validation_split: 0.2, test_split: 0.2}
model:
  input_shape: [6]
  layers:
    - {type: Dense, units: 8, activation: relu}
    - {type: Dropout, rate: 0.1}
    - {type: Dense, units: 3, activation: softmax}
compile:
  optimizer: adam
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
train: {epochs: 2, batch_size: 16}
"""


@pytest.fixture
def small_config(write_config):
    return write_config(SMALL_MLP)
