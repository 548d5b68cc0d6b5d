"""The environment of the local tritonserver: ``.venv-triton`` and its backends directory.

nvidia-pytriton's wheel ships ``tritonserver`` 2.51, the python backend and per-version
python stubs. Run bare, the server needs a backends directory holding
``python/libtriton_python.so``, ``python/triton_python_backend_utils.py`` and the 3.11
``triton_python_backend_stub``; ``LD_LIBRARY_PATH`` with the interpreter's libpython (the
stub links Debian's libpython3.11, hence a venv from ``/usr/bin/python3.11``) and the
wheel's ``nvidia_pytriton.libs``; and the venv's ``bin`` first on ``PATH``.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from models.paths import REPO_ROOT

TRITON_VENV = Path(".venv-triton")
STUB = "triton_python_backend_stub"


@dataclass(frozen=True)
class TritonEnv:
    """The paths of ``.venv-triton`` that running the server needs."""

    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def site(self) -> Path:
        return self.venv / "lib" / "python3.11" / "site-packages"

    @property
    def server_dir(self) -> Path:
        return self.site / "pytriton" / "tritonserver"

    @property
    def binary(self) -> Path:
        return self.server_dir / "bin" / "tritonserver"

    @property
    def backends(self) -> Path:
        return self.venv / "triton-backends"

    def environment(self) -> dict[str, str]:
        """PATH with the venv's bin first (the stub finds its python there) and
        LD_LIBRARY_PATH with the interpreter's libpython dir and the wheel's bundled libs."""
        libdir = subprocess.run(
            [str(self.python), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        lib_path = [libdir, str(self.site / "nvidia_pytriton.libs")]
        if os.environ.get("LD_LIBRARY_PATH"):
            lib_path.append(os.environ["LD_LIBRARY_PATH"])
        return {
            "PATH": f"{self.venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "LD_LIBRARY_PATH": ":".join(lib_path),
            "VIRTUAL_ENV": str(self.venv),
        }


def triton_env(root: Path = REPO_ROOT) -> TritonEnv:
    """``.venv-triton``; FileNotFoundError (run ``make triton-env``) when it is not built."""
    env = TritonEnv((Path(root) / TRITON_VENV).absolute())
    if not env.binary.is_file():
        raise FileNotFoundError(f"{env.binary} is missing: run `make triton-env`")
    return env


def prepare_triton_backends(root: Path = REPO_ROOT) -> Path:
    """Lay out the backends directory the server expects (idempotent); return it."""
    env = triton_env(root)
    python = env.backends / "python"
    python.mkdir(parents=True, exist_ok=True)
    links = {
        "libtriton_python.so": env.server_dir / "backends" / "python" / "libtriton_python.so",
        "triton_python_backend_utils.py": (
            env.server_dir / "backends" / "python" / "triton_python_backend_utils.py"
        ),
        STUB: env.server_dir / "python_backend_stubs" / "3.11" / STUB,
    }
    for name, target in links.items():
        if not target.is_file():
            raise FileNotFoundError(f"{target} is missing: run `make triton-env` again")
        link = python / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    return env.backends
