"""Copy the pinned browser files from vendor/node_modules (after `npm ci`) into the package,
where the service serves them: `python vendor/copy_assets.py`. Called by `make install`."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from service.web.assets import VENDOR, VENDOR_FILES, VENDOR_LICENSES

NODE_MODULES = Path(__file__).resolve().parent / "node_modules"


def main() -> int:
    """Copy every file; fail naming the first one npm did not install."""
    VENDOR.mkdir(exist_ok=True)
    for target, source in {**VENDOR_FILES, **VENDOR_LICENSES}.items():
        origin = NODE_MODULES / source
        if not origin.is_file():
            print(f"{origin} is missing: run `npm ci` in vendor/ first", file=sys.stderr)
            return 1
        shutil.copyfile(origin, VENDOR / target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
