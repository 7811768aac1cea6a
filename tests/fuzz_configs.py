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
import time

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


# Spellings YAML has for numbers (and things that only look like them); each must end in a value or one error.
NUMBERS = ["1e-3", "1E-3", "5e4", "-2e+2", ".5", "1.", "1.0e3", "0x1F", "0o17", "1_000", "+7", "-0", ".inf", "-.Inf",
           ".nan", "1e400", "'1e-3'", "1:30", "0b101", "1e", "1.2.3", "12e-1", "0.0000001", "9" * 30]


def text_mutation(text, rng):
    """Mutations made on the YAML text itself: aliases, duplicate keys, deep nesting, number spellings."""
    lines = text.splitlines()
    kind = rng.choice(["alias", "bomb", "duplicate", "deep_text", "number"])
    if kind == "alias":  # anchor one line's flow value and reuse it under a new key, or at a known key
        i = rng.randrange(len(lines))
        if ": " in lines[i] and not lines[i].rstrip().endswith(":"):
            key, value = lines[i].split(": ", 1)
            lines[i] = f"{key}: &shared {value}"
            indent = key[: len(key) - len(key.lstrip())]
            lines.insert(i + 1, f"{indent}{rng.choice(['extra', 'units', 'epochs', 'loss'])}: *shared")
        else:
            lines.append("extra: *undefined")
    elif kind == "bomb":
        levels = rng.randint(3, 12)
        bomb = ['b0: &b0 [lol, lol]'] + [f"b{k}: &b{k} [{', '.join([f'*b{k - 1}'] * rng.randint(2, 12))}]"
                                        for k in range(1, levels)]
        at = rng.randrange(len(lines) + 1)
        lines[at:at] = bomb
    elif kind == "duplicate":
        i = rng.randrange(len(lines))
        lines.insert(rng.randrange(i, len(lines)) + 1, lines[i])
    elif kind == "deep_text":
        n = rng.choice([10, 63, 64, 65, 100, 1000, 20000])
        opener, closer = rng.choice([("[", "]"), ("{a: ", "}")])
        lines.append(f"train: {opener * n}1{closer * n}")
    else:
        numbers = [i for i, line in enumerate(lines) if any(c.isdigit() for c in line)]
        i = rng.choice(numbers or [0])
        lines[i] = "".join(rng.choice(NUMBERS) if part.replace(".", "", 1).isdigit() else part
                           for part in _split_keep(lines[i]))
    return "\n".join(lines) + "\n"


def _split_keep(line):
    """Split a line into number-like runs and the rest, keeping both."""
    parts, current = [], ""
    for char in line:
        numeric = char.isdigit() or char == "."
        if current and (current[-1].isdigit() or current[-1] == ".") != numeric:
            parts.append(current)
            current = ""
        current += char
    return parts + ([current] if current else [])


def mutate(config, rng):
    config = copy.deepcopy(config)
    all_paths = [p for p in paths(config) if p]
    kind = rng.choice(["replace", "replace", "replace", "delete", "add", "deep", "garbage", "text", "text"])
    if kind == "garbage":
        return "".join(rng.choice(" :-[]{}#&*!|>'\"%@`abc123\n\t") for _ in range(rng.randint(1, 80)))
    if kind == "text":
        return text_mutation(yaml.safe_dump(config, default_flow_style=None, width=1000), rng)
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
    outcomes = {"ok": 0, "error": 0, "slowest_seconds": 0.0}
    for i in range(count):
        mutated = mutate(rng.choice(bases), rng)
        text = mutated if isinstance(mutated, str) else yaml.safe_dump(mutated)
        path = os.path.join(folder, f"case{i}.yaml")
        with open(path, "w") as f:
            f.write(text)
        started = time.perf_counter()
        result = runner.invoke(cli, ["validate", path])
        outcomes["slowest_seconds"] = max(outcomes["slowest_seconds"], time.perf_counter() - started)
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
