"""Run one benchmark method in a child process, so that a backend that crashes the process
(a segfault or an abort in native code, a call to ``os._exit``) ends that method only.

The child is started with ``spawn`` (a fresh interpreter: no state inherited from the parent,
no fork of a process that holds threads or a CUDA context). It sends the parent its log records,
its progress (images done in the method's cache) and finally its result, over a pipe. A child
that dies without a result is described from the last progress it sent: "crashed (SIGSEGV)
after 256/312 images; rerun to resume" (finished chunks are in the cache, so a rerun resumes).

Interrupting the parent (Ctrl-C, SIGTERM) stops the child the same way before the interrupt
goes on; a child whose parent is killed outright (SIGKILL) notices and stops by itself.
"""
from __future__ import annotations

import _thread
import atexit
import logging
import logging.handlers
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass

from face_alignment.errors import FaceBenchError

#: exit status of a child stopped by an interrupt (as a shell reports death by SIGINT)
INTERRUPTED = 130
#: seconds a child whose parent died, or that was asked to stop, has to finish cleanly
GRACE_SECONDS = 10.0

Progress = Callable[[int, int], None]


@dataclass
class ChildOutcome:
    """What a child process left: its result, or why there is none."""

    result: object = None
    error: str = ""


class _Channel:
    """The child's end of the pipe, shared by the logging handler and the progress callback."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self._conn, self._lock = conn, threading.Lock()

    def send(self, message: tuple) -> None:
        with self._lock:
            self._conn.send(message)

    def put_nowait(self, record: logging.LogRecord) -> None:  # the queue interface of QueueHandler
        self.send(("log", record))


def run_in_child(target: Callable[..., object], args: tuple, name: str,
                 on_progress: Progress | None = None) -> ChildOutcome:
    """Call ``target(*args, progress=...)`` in a spawned child and return what it returned.

    ``progress(done, total)`` is how ``target`` reports the images its cache holds; each report
    is passed on to ``on_progress`` here. ``target`` and ``args`` must be picklable (a
    module-level function, plain data). A :class:`FaceBenchError` that ``target`` lets out (what
    stops a whole run, e.g. an output folder that cannot be written) is raised here.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(sender, target, args, logging.getLogger().getEffectiveLevel()),
                            name=f"facebench-{name}")
    start_without_callers_main(child)
    sender.close()  # the child holds the only writing end: the pipe ends when it does
    outcome, progress, raised = ChildOutcome(), None, None
    try:
        for message in _messages(receiver, child):
            kind, payload = message
            if kind == "log":
                logging.getLogger(payload.name).handle(payload)
            elif kind == "progress":
                progress = payload
                if on_progress is not None:
                    on_progress(*payload)
            elif kind == "result":
                outcome.result = payload
            elif kind == "raised":
                raised = payload
        child.join()
    except BaseException:  # KeyboardInterrupt (Ctrl-C, or SIGTERM through the CLI): stop the child first
        stop_process(child)
        raise
    finally:
        receiver.close()
    if raised is not None:
        raise raised
    if outcome.result is None:
        outcome.error = _describe_death(child.exitcode, progress)
    return outcome


def start_without_callers_main(child) -> None:
    """Start ``child`` without re-running the caller's script in it. ``spawn`` re-imports the
    parent's ``__main__`` in the child (so that functions defined there can be unpickled); a script
    that calls the benchmark without an ``if __name__ == "__main__":`` guard would then run again
    there and fail (``freeze_support``). The child needs nothing of it: its target is a function of
    this package, so the parent's ``__main__`` is hidden while the child's start-up data is made."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        child.start()
    finally:
        sys.modules["__main__"] = main


def _messages(receiver: multiprocessing.connection.Connection, child):
    """The child's messages until it has ended and the pipe is drained."""
    while True:
        multiprocessing.connection.wait([receiver, child.sentinel])
        while receiver.poll():
            try:
                yield receiver.recv()
            except EOFError:
                return
        if not child.is_alive() and not receiver.poll():
            return


def stop_process(child, grace_seconds: float = GRACE_SECONDS) -> None:
    """Ask a child process to stop (SIGTERM: it saves nothing half-written), then insist after
    ``grace_seconds``."""
    if child.is_alive():
        child.terminate()
        child.join(grace_seconds)
    if child.is_alive():
        child.kill()
        child.join()


def _describe_death(exitcode: int | None, progress: tuple[int, int] | None) -> str:
    if exitcode is not None and exitcode < 0:
        how = f"crashed ({signal.Signals(-exitcode).name})"
    elif exitcode == INTERRUPTED:
        how = "was interrupted"
    else:
        how = f"exited with status {exitcode} without a result"
    if progress is None:
        return f"{how} while starting (loading the detector or the embedder)"
    done, total = progress
    return f"{how} after {done}/{total} images; rerun to resume"


def _child_main(sender, target: Callable[..., object], args: tuple, log_level: int) -> None:
    """The child: forward logging, stop with the parent, run ``target``, send its result."""
    channel = _Channel(sender)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(channel)]
    root.setLevel(log_level)
    stop_on_sigterm()
    _stop_with_parent()
    try:
        result = target(*args, progress=lambda done, total: channel.send(("progress", (done, total))))
        channel.send(("result", result))
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
    except FaceBenchError as exc:  # what stops the whole run (a method's own failures are its row's error)
        channel.send(("raised", exc))
    # everything is written and sent: end as a forked multiprocessing child does, running the
    # exit handlers (they release semaphores) but skipping the interpreter's teardown, which
    # takes seconds once torch is loaded
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def stop_on_sigterm() -> None:
    """Make SIGTERM interrupt this process as Ctrl-C does (KeyboardInterrupt: finished work is
    kept), and make sure no interruption is lost: one that lands in a finaliser or a weakref
    callback, where Python ignores exceptions and prints "Exception ignored", is delivered to the
    main thread again (:func:`_redeliver_interrupt`)."""
    signal.signal(signal.SIGTERM, _interrupt)
    sys.unraisablehook = _redeliver_interrupt


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _redeliver_interrupt(unraisable) -> None:
    """``sys.unraisablehook``: an interrupt swallowed where exceptions cannot propagate is raised
    again in the main thread a moment later, once out of the callback (as a SIGTERM, whose handler
    raises it whether or not SIGINT is ignored here); anything else is reported as Python does."""
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        threading.Timer(0.05, _thread.interrupt_main, (signal.SIGTERM,)).start()
        return
    sys.__unraisablehook__(unraisable)


def _stop_with_parent() -> None:
    """A thread that interrupts the child when its parent dies, and ends it if that does not
    stop it within :data:`GRACE_SECONDS` (the main thread may be stuck in native code)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        _thread.interrupt_main()
        threading.Event().wait(GRACE_SECONDS)
        os._exit(INTERRUPTED)

    threading.Thread(target=watch, name="facebench-parent-watch", daemon=True).start()
