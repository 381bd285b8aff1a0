"""An execution environment of one function in a process of its own (see
:class:`cdp_infra.runtime.ProcessEnvironment`, which starts it).

Run: ``python -m cdp_infra.worker READ_FD WRITE_FD`` (the pipe's ends it inherited).
"""

from __future__ import annotations

import sys
from multiprocessing.connection import Connection

from .runtime import serve


def main(argv: list[str]) -> None:
    serve(Connection(int(argv[0]), writable=False), Connection(int(argv[1]), readable=False))


if __name__ == "__main__":
    main(sys.argv[1:])
