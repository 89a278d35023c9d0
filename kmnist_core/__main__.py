"""python -m kmnist_core: the command line (see cli.py).

Ctrl+C at any moment ends in "interrupted" and exit status 130, never a
traceback: also in the first seconds, while torch, numpy and scikit-learn are
imported, which is why that import happens inside the try. A Ctrl+C that lands
inside a library's import can surface as another exception (numpy half-imported:
an AttributeError), so the handler notes that Ctrl+C was pressed."""

import os
import signal
import sys

INTERRUPTED = 130  # the shell's status for Ctrl+C (128 + SIGINT)
pressed = False


def on_ctrl_c(signum, frame):
    global pressed
    pressed = True
    raise KeyboardInterrupt  # as Python's own handler does: a run being trained saves and stops


def run() -> int:
    try:
        from .cli import main
        return main()
    except BaseException as error:
        if isinstance(error, SystemExit) or not (pressed or isinstance(error, KeyboardInterrupt)):
            raise
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl+C must not cut the message short
        print("interrupted", file=sys.stderr)
        return INTERRUPTED


signal.signal(signal.SIGINT, on_ctrl_c)
status = run()
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C during the clean-up at exit changes nothing now
if status == INTERRUPTED:
    # A Ctrl+C that landed inside an extension's import leaves CPython's "unhandled
    # KeyboardInterrupt" flag set although it was handled here, and a normal exit would then
    # kill the process with SIGINT. The run's files are already saved and closed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(INTERRUPTED)
sys.exit(status)
