"""What every entry point (study.sweep, study.report, study.paper, benchmarks.run) does with an error: one
line on stderr naming the file and what to do, and a documented exit code; a traceback only with --debug.

Exit codes: 0 ok; 1 some trials failed (or a figure could not be built); 2 bad input or an unusable
environment (a spec error, a file that cannot be read or written, a full disk): nothing already computed
is lost; 3 an internal error (a bug: --debug shows the traceback); 130 interrupted (Ctrl-C or SIGTERM):
run the same command again to resume.
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from study.errors import UserError

OK, FAILED, BAD_INPUT, INTERNAL, INTERRUPTED = 0, 1, 2, 3, 130
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, like KeyboardInterrupt, so `except Exception` in
    library code cannot swallow it; raised for SIGTERM too, so both unwind through the same clean-up."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


@contextmanager
def interrupts_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise Interrupted. Once one has arrived, later ones are ignored until the block
    ends: the clean-up (stopping workers, a few seconds at most) must not be cut short halfway."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def handler(signum, frame):
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    old = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def describe_os_error(e: OSError) -> str:
    """'<file>: <what happened>; <what to do>' for an OSError of the environment."""
    where = str(e.filename or "")
    if e.filename2:  # a copy or a move: out of space is about where it was going
        where = str(e.filename2) if e.errno in DISK_FULL else f"{where} -> {e.filename2}"
    what = e.strerror or str(e)
    if e.errno in DISK_FULL:
        todo = "free some space and run the same command again (what is finished is kept)"
    elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        todo = "make it writable or choose another location"
    else:
        todo = "check the path"
    return f"{where + ': ' if where else ''}{what}; {todo}"


def quiet_broken_pipe() -> None:
    """stdout's reader went away (`... | head`): send the rest of our output nowhere, so that the flush at
    exit cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the entry points' convention: a bad argument is one line and exit 2 (argparse's own
    error prints the whole usage)."""

    def error(self, message: str):
        self.exit(BAD_INPUT, f"{self.prog}: error: {message}\n")


def run(prog: str, body: Callable[[], int], debug: bool = False) -> int:
    """Run an entry point's body; turn every error into one line on stderr and an exit code."""
    try:
        with interrupts_raise():
            return body()
    except UserError as e:
        print(str(e), file=sys.stderr)
        return BAD_INPUT
    except Interrupted as e:
        print(f"{prog}: interrupted ({e}); run the same command again to resume", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        quiet_broken_pipe()
        return OK
    except OSError as e:
        if debug:
            raise
        print(f"{prog}: {describe_os_error(e)}", file=sys.stderr)
        return BAD_INPUT
    except Exception as e:
        if debug:
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"{prog}: internal error: {type(e).__name__}{': ' + first if first else ''} "
              "(run again with --debug for the traceback)", file=sys.stderr)
        return INTERNAL
