"""Bytecode in the Lambda zip: a function's cold start then compiles nothing.

Lambda's task root is read-only, so an interpreter there cannot write the ``.pyc`` files it compiles:
every cold start compiles every module it imports again (about 0.6 s for the API). The zip that
``chalice package`` writes is rewritten with the bytecode of each module beside its source, compiled
by this interpreter (Chalice packages for this interpreter's version, so the runtime's matches) with
``unchecked-hash`` invalidation: the ``.pyc`` is used as is, whatever the files' timestamps in the zip.
Entries are written in name order with a fixed timestamp, so the same sources give the same zip (and
the same asset hash).
"""

from __future__ import annotations

import compileall
import py_compile
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

#: Timestamp of every entry of the rewritten zip (the earliest a zip can hold).
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
#: Files the functions never read, left out of the zip: ``holidays``' translations of holiday names
#: (4.7 MB of ``.mo`` files; the review deadlines ask only whether a day is a working day).
DROPPED_PREFIXES = ("holidays/locale/",)


def precompile_zip(path: Path) -> int:
    """Rewrite the zip at ``path`` with the bytecode of its modules; returns the ``.pyc`` files added."""
    with tempfile.TemporaryDirectory(prefix="cheka-pyc-") as tmp:
        root = Path(tmp) / "root"
        with zipfile.ZipFile(path) as original:
            modes = {info.filename: info.external_attr for info in original.infolist()}
            original.extractall(root)
        before = set(root.rglob("*.pyc"))
        compileall.compile_dir(
            root,
            quiet=2,
            legacy=False,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        added = len(set(root.rglob("*.pyc")) - before)
        rewritten = Path(tmp) / "deployment.zip"
        with zipfile.ZipFile(rewritten, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as out:
            for file in sorted(p for p in root.rglob("*") if p.is_file()):
                name = file.relative_to(root).as_posix()
                if name.startswith(DROPPED_PREFIXES):
                    continue
                info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
                info.external_attr = modes.get(name, 0o644 << 16)
                info.compress_type = zipfile.ZIP_DEFLATED
                out.writestr(info, file.read_bytes())
        shutil.move(str(rewritten), path)
    return added


def precompiling_chalice() -> type[Any]:
    """Chalice's CDK construct, with its ``chalice package`` zip rewritten by :func:`precompile_zip`
    before the construct makes it an asset (the construct's packaging step, ``_package_app``, is the one
    place between the two)."""
    from chalice.cdk import Chalice  # imported late: it imports the chalice CLI machinery

    class PrecompilingChalice(Chalice):
        def _package_app(self) -> None:
            super()._package_app()
            precompile_zip(Path(self._sam_package_dir) / "deployment.zip")

    return PrecompilingChalice
