"""python -m kmnist_core: the command line (see cli.py).

Ctrl+C at any moment ends in "interrupted" and exit status 130, never a
traceback: also in the first seconds, while torch is imported, which is why
that import happens inside the try."""

import os
import signal
import sys

INTERRUPTED = 130  # the shell's status for Ctrl+C (128 + SIGINT)


def run() -> int:
    try:
        from .cli import main
        return main()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl+C must not cut the message short
        print("interrupted", file=sys.stderr)
        return INTERRUPTED


status = run()
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C during the clean-up at exit changes nothing now
if status == INTERRUPTED:
    # A Ctrl+C that landed inside an extension's import (torch runs Python code from C) leaves
    # CPython's "unhandled KeyboardInterrupt" flag set although it was handled here, and a normal
    # exit would then kill the process with SIGINT. The run's files are already saved and closed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(INTERRUPTED)
sys.exit(status)
