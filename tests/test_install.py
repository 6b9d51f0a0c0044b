"""The package as a user installs it: a wheel in a fresh environment finds its configs and runs."""

import json
import site
import subprocess
import sys
import venv
from pathlib import Path

from tests.conftest import TINY

ROOT = Path(__file__).resolve().parent.parent


def test_a_wheel_installed_in_a_fresh_environment_runs_a_tiny_run(tmp_path):
    """Built without the source tree's help: the wheel must carry conf/ inside the package. The fresh
    environment sees the running environment's libraries (torch and the rest) but its own site-packages,
    holding only the wheel, come first; the run starts outside the checkout. It sees them through a .pth
    file, not system site-packages: when the suite runs in a venv, "system" is the base interpreter, which
    need not hold them."""
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", str(wheels)],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("rlhf_bench-*.whl")
    env = tmp_path / "env"
    venv.create(env, with_pip=True)
    (own,) = env.glob("lib/python*/site-packages")
    # Plain path lines, not site.addsitedir: that would run the running env's .pth files, and its editable
    # install's finder would serve the checkout's bench instead of the wheel's.
    (own / "running-env.pth").write_text("".join(f"{path}\n" for path in site.getsitepackages()))
    python = env / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    where = subprocess.run([str(python), "-c", "import bench, pathlib; print(pathlib.Path(bench.__file__).parent)"],
                           capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(env), where.stdout  # the wheel's copy, not the checkout's
    sweep = tmp_path / "sweep"
    done = subprocess.run([str(env / "bin" / "rlhf-bench"), *TINY, "algo=dpo", "stage_seed=0", "seed=0", "budget.amount=5e9",
                           f"cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={sweep}"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (summary,) = sweep.glob("dpo_sentiment_*/summary.json")
    assert json.loads(summary.read_text())["status"] == "finished"
    assert (sweep / "results" / "summary.csv").exists()  # the multirun's own tables
