"""Run ``kerascli validate`` on seeded random mutations of valid configs; print one JSON line per failure.

Used by test_fuzz.py in a child process with an address-space limit, so an
absurd allocation shows up as a failure instead of swapping the machine.
"""

import copy
import json
import os
import random
import sys
import tempfile

import yaml
from click.testing import CliRunner

from kerascli.cli import cli

ODD_VALUES = ["text", 3.7, -5, 0, -1, 10**12, 2**63, 1e308, True, None, [], {}, [1, [2, [3]]], "../../x",
              {"type": "Dense"}, [0.5, "a"], "", " ", "relu", -1e-9]


def deep(levels):
    value = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, prefix + (i,))


def parent_and_key(config, path):
    node = config
    for part in path[:-1]:
        node = node[part]
    return node, path[-1]


def mutate(config, rng):
    config = copy.deepcopy(config)
    all_paths = [p for p in paths(config) if p]
    kind = rng.choice(["replace", "replace", "replace", "delete", "add", "deep", "garbage"])
    if kind == "garbage":
        return "".join(rng.choice(" :-[]{}#&*!|>'\"%@`abc123\n\t") for _ in range(rng.randint(1, 80)))
    path = rng.choice(all_paths)
    parent, key = parent_and_key(config, path)
    if kind == "replace":
        parent[key] = copy.deepcopy(rng.choice(ODD_VALUES))
    elif kind == "delete":
        del parent[key]
    elif kind == "add":
        target = parent if isinstance(parent, dict) else config
        target[rng.choice(["extra", "unit", "layer", "epoch", "lr"])] = rng.choice(ODD_VALUES)
    else:
        parent[key] = deep(rng.randint(5, 200))
    return config


def main(count, seed, config_files):
    rng = random.Random(seed)
    bases = [yaml.safe_load(open(f)) for f in config_files]
    folder = tempfile.mkdtemp()
    runner = CliRunner()
    outcomes = {"ok": 0, "error": 0}
    for i in range(count):
        mutated = mutate(rng.choice(bases), rng)
        text = mutated if isinstance(mutated, str) else yaml.safe_dump(mutated)
        path = os.path.join(folder, f"case{i}.yaml")
        with open(path, "w") as f:
            f.write(text)
        result = runner.invoke(cli, ["validate", path])
        out = result.output
        clean = (
            (result.exit_code == 0 and ": OK (" in out)
            or (result.exit_code == 2 and out.startswith("error: ") and out.count("\n") == 1)
        )
        if not clean or "Traceback" in out or "internal error" in out:
            print(json.dumps({"case": i, "exit": result.exit_code, "output": out[-2000:], "config": text[:2000]}))
        outcomes["ok" if result.exit_code == 0 else "error"] += 1
    print(json.dumps({"summary": outcomes}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
