"""Build hook: the evaluate metric script has one home, `metrics/mt_bench_judge/`; a wheel or
sdist install gets a copy inside the package (`mt_bench_task/metrics/`), made here at build time,
so `evaluate.load("mt_bench_judge")` works without the checkout. Editable installs read the
checkout's file directly (`mt_bench_task.integrations.register.metric_script`)."""
from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

METRIC = Path("metrics") / "mt_bench_judge" / "mt_bench_judge.py"


class BuildPyWithMetric(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            target = Path(self.build_lib) / "mt_bench_task" / METRIC
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(METRIC, target)


setup(cmdclass={"build_py": BuildPyWithMetric})
