"""Packs a CPython build's standard library (`DIST/lib`) into a reproducible `.tar.xz`:
entries in sorted order, every file mode 644 with no owner and time 0, PAX format, xz
preset 9e. `python examples/python/pack-stdlib.py /work/cpy/dist OUT.tar.xz`."""

from __future__ import annotations

import hashlib
import io
import lzma
import sys
import tarfile
from pathlib import Path


def pack(dist: Path, out: Path) -> str:
    files = sorted(p for p in (dist / "lib").rglob("*") if p.is_file())
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            info = tarfile.TarInfo(path.relative_to(dist).as_posix())
            info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
            with path.open("rb") as file:
                tar.addfile(info, file)
    data = lzma.compress(raw.getvalue(), preset=9 | lzma.PRESET_EXTREME)
    out.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


if __name__ == "__main__":
    print(pack(Path(sys.argv[1]), Path(sys.argv[2])), sys.argv[2])
