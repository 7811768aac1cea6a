"""A few hundred mutated configs (wrong types, deleted and unknown keys, huge numbers, deep nesting,
aliases and alias bombs, duplicate keys, numbers in every YAML spelling, garbage text): each ends in
exit 0 or one clear error with exit 2, never a traceback, never an attempt to allocate absurd amounts
(the child runs under an 8 GiB address-space limit)."""

import json
import os
import resource
import subprocess
import sys

from conftest import CONFIGS, ROOT

LIMIT = 8 << 30


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def test_mutated_configs_fail_cleanly(tmp_path):
    bases = [os.path.join(CONFIGS, f) for f in sorted(os.listdir(CONFIGS))]
    small = tmp_path / "small.yaml"
    from conftest import SMALL_MLP

    small.write_text(SMALL_MLP)
    script = os.path.join(ROOT, "tests", "fuzz_configs.py")
    out = subprocess.run([sys.executable, script, "300", "20261127", str(small), *bases], capture_output=True,
                         text=True, preexec_fn=limit_memory, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    failures = [line for line in lines if "case" in line]
    summary = lines[-1]["summary"]
    assert not failures, json.dumps(failures[:3], indent=1)
    assert summary["error"] >= 200  # most mutations really are invalid, so the errors were exercised
    assert summary["slowest_seconds"] < 30  # an alias bomb or deep nesting is refused, not expanded
