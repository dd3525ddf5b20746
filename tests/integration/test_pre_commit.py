"""The pre-commit hook, run the way users run it: `pre-commit try-repo` on this repository, in another git
repository holding a good and a bad fleet file. pip installs the hook from a local wheelhouse (no index)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
GOOD_FLEET = """\
agents:
  - name: support-agent
    description: "Support"
    llm_config:
      model: letta/letta-free
      context_window: 32000
    system_prompt:
      value: You help customers.
    embedding: letta/letta-free
    memory_blocks:
      - name: faq
        limit: 5000
        from_file: knowledge/faq.md
"""
BAD_FLEET = """\
agents:
  - name: broken-agent
    llm_config:
      model: letta/letta-free
      context_window: lots
    embedding: letta/letta-free
"""


def git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        },
    )


@pytest.fixture(scope="module")
def hook_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This project's working tree (tracked and untracked, less ignored files) committed into a fresh repo: what
    users get from the published repository, including changes not committed here yet."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=PROJECT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    target = tmp_path_factory.mktemp("hook-repo")
    for relative in filter(None, listed):
        source = PROJECT / relative
        if source.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)
    git("init", "-q", cwd=target)
    git("add", "-A", cwd=target)
    git("commit", "-q", "-m", "snapshot", cwd=target)
    return target


@pytest.fixture(scope="module")
def wheelhouse(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of lettafleet's dependencies and build backend, kept in pytest's cache between runs: the index is
    asked once, and the hook installs with no index at all."""
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())
    requirements = sorted([*project["project"]["dependencies"], *project["build-system"]["requires"]])
    key = hashlib.sha256(f"{sys.version_info[:2]}{requirements}".encode()).hexdigest()[:12]
    cache = getattr(pytestconfig, "cache", None)  # None under `-p no:cacheprovider`
    folder = cache.mkdir(f"wheelhouse-{key}") if cache else tmp_path_factory.mktemp("wheelhouse")
    if not (folder / "complete").exists():
        built = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--disable-pip-version-check",
                "--wheel-dir",
                str(folder),
                *requirements,
            ],
            capture_output=True,
            text=True,
        )
        assert built.returncode == 0, f"cannot build the wheelhouse (is a package index reachable?):\n{built.stderr}"
        (folder / "complete").touch()
    return folder


@pytest.fixture(scope="module")
def hook_run(
    tmp_path_factory: pytest.TempPathFactory, hook_repository: Path, wheelhouse: Path
) -> subprocess.CompletedProcess[str]:
    """One `pre-commit try-repo` on a repository with a good fleet file, a bad one and a YAML file that is no
    fleet: installing the hook takes most of the time, and try-repo installs it afresh on every call."""
    user = tmp_path_factory.mktemp("user-repo")
    (user / "knowledge").mkdir()
    (user / "knowledge" / "faq.md").write_text("Q: Hours? A: 9-5.\n")
    (user / "fleet.yaml").write_text(GOOD_FLEET)
    (user / "fleets").mkdir()
    (user / "fleets" / "agents-broken.yml").write_text(BAD_FLEET)
    (user / "config.yaml").write_text("not: a fleet\n")
    git("init", "-q", cwd=user)
    git("add", "-A", cwd=user)
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path_factory.mktemp("pre-commit-home")),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheelhouse),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PRE_COMMIT_COLOR": "never",
    }
    env.pop("VIRTUAL_ENV", None)
    command = [
        sys.executable,
        "-m",
        "pre_commit",
        "try-repo",
        str(hook_repository),
        "lettafleet-validate",
        "--all-files",
        "--verbose",
    ]
    return subprocess.run(command, cwd=user, env=env, capture_output=True, text=True, timeout=600)


def test_a_bad_fleet_file_is_stopped_at_its_file_line_and_column(hook_run: subprocess.CompletedProcess[str]) -> None:
    assert hook_run.returncode == 1, hook_run.stdout + hook_run.stderr
    assert "lettafleet validate" in hook_run.stdout and "Failed" in hook_run.stdout
    assert "fleets/agents-broken.yml:5:7: agents[0].llm_config.context_window must be a whole number" in (
        hook_run.stdout
    )


def test_a_good_fleet_file_passes(hook_run: subprocess.CompletedProcess[str]) -> None:
    assert "fleet.yaml: valid (1 agent" in hook_run.stdout, hook_run.stdout + hook_run.stderr


def test_yaml_files_not_named_like_fleets_are_left_alone(hook_run: subprocess.CompletedProcess[str]) -> None:
    assert "config.yaml" not in hook_run.stdout.replace("pre-commit-config.yaml", ""), hook_run.stdout
