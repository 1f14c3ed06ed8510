"""What a release needs (issue 34): the licences, dependency bounds that let the package install
beside newer releases, the build's requirements, the metadata the napari hub and PyPI show.
The build itself, the wheel in a fresh environment and co-installation are `.ci/release-check`'s
(CI runs it after the tests); the wheel's contents are tests/test_install.py's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

import napari_genprior as ngp

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_licence_names_its_holder_and_the_data_notices_are_kept():
    text = (ROOT / "LICENSE").read_text()
    assert "BSD 3-Clause" in text and re.search(r"Copyright \(c\) 20\d\d, \S", text)
    assert PROJECT["project"]["license"] == "BSD-3-Clause"
    files = PROJECT["project"]["license-files"]
    assert "LICENSE" in files and any(f.startswith("LICENSES/") for f in files)
    mni = (ROOT / "LICENSES" / "MNI152-NOTICE.txt").read_text()
    assert "Copyright (C) 1993-2009 Louis Collins" in mni and "without fee" in mni
    data = (ROOT / "LICENSES" / "DATA.txt").read_text()
    assert "CC0" in data and "not settled" in data  # BBBC038's licence; MNIST's question


@pytest.mark.parametrize("name", ngp.list_priors())
def test_every_bundled_prior_names_its_datas_licence_and_notice(name):
    card = ngp.load_prior(name).card
    assert card["data_licence"] and card["notice"]
    if name.startswith("mri-"):  # trained on the MNI152 template: its notice travels with it
        assert "Louis Collins" in card["notice"]
    if name.startswith("digits-"):
        assert "not settled" in card["data_licence"]


def test_no_dependency_is_capped():
    caps = []
    for text in PROJECT["project"]["dependencies"]:
        req = Requirement(text)
        if any(spec.operator in ("<", "<=", "==", "~=", "===") for spec in req.specifier):
            caps.append(text)
    assert not caps, f"upper bounds refuse newer releases beside ours: {caps}"
    names = {Requirement(t).name.lower() for t in PROJECT["project"]["dependencies"]}
    assert {"scipy", "psygnal", "torch", "napari"} <= names  # imported, so declared
    assert "deepinv" not in names and any(
        Requirement(t).name == "deepinv"
        for t in PROJECT["project"]["optional-dependencies"]["bench"]
    )


def test_ci_pins_the_cpu_torch_wheel_not_the_package():
    assert "torch==2.13.0" in (ROOT / ".ci" / "constraints.txt").read_text().split()
    run = (ROOT / ".ci" / "run").read_text()
    assert "-c .ci/constraints.txt" in run and "bash .ci/release-check" in run


def test_the_build_needs_a_setuptools_that_knows_spdx_licences():
    (req,) = [Requirement(r) for r in PROJECT["build-system"]["requires"]]
    assert (
        req.name == "setuptools"
        and req.specifier.contains("77")
        and not req.specifier.contains("76.9")
    )


def test_metadata_for_pypi_and_the_napari_hub():
    classifiers = PROJECT["project"]["classifiers"]
    for needed in (
        "Framework :: napari",
        "Intended Audience :: Science/Research",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3.11",
    ):
        assert needed in classifiers
    assert any(c.startswith("Development Status ::") for c in classifiers)
    urls = PROJECT["project"]["urls"]
    assert {"Documentation", "Bug Tracker", "User Support", "Source Code"} <= set(urls)
    assert (ROOT / "CHANGELOG.md").is_file()
    assert PROJECT["tool"]["setuptools"]["dynamic"]["version"]["attr"].endswith("__version__")


def test_the_readme_shows_the_pip_install_first():
    text = (ROOT / "README.md").read_text()
    pip = text.index('pip install "napari-genprior[all]"')
    assert pip < text.index("pip install -e")


def test_the_benchmarks_live_outside_the_package():
    assert not (ROOT / "src" / "napari_genprior" / "bench").exists()
    assert (ROOT / "benchmarks" / "genprior_bench" / "__init__.py").is_file()
