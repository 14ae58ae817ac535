"""Build hook: ship the presets inside the package.

The top-level ``presets/`` folder stays the one place to edit presets; a regular build (wheel,
``pip install .``) copies its ``*.toml`` files into ``engine/_presets/`` so that an install
outside the checkout (a cluster node, a sweep worker) finds them. An editable install reads
``presets/`` in place (see ``engine.config.presets_dir``). Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PRESETS = Path(__file__).resolve().parent / "presets"


class BuildPyWithPresets(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "engine" / "_presets"
        self.mkpath(str(target))
        for preset in sorted(PRESETS.glob("*.toml")):
            self.copy_file(str(preset), str(target / preset.name))


setup(cmdclass={"build_py": BuildPyWithPresets})
