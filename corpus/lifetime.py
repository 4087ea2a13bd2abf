"""Helper processes die with the command that started them, however it dies (kill -9 included).

datatrove's local executor starts a manager process (forked), a fork server (a new interpreter)
and pool workers (forked by the fork server). None of them notices when `corpus` is killed with
SIGKILL: the manager lives on with parent PID 1, and a worker could finish a task beside the rerun.
Linux lets a process ask for a signal when its parent dies (prctl PR_SET_PDEATHSIG), so:

- `install(command=True)` runs in the `corpus` command's process: it records its PID in the
  environment and registers a fork hook, so a child forked from the main thread asks for SIGKILL
  when its parent dies.
- `install()` runs when `corpus.cli` or `corpus.execution` is imported. A process that imports it
  with that variable set and another PID is a helper of the command whose parent may be another
  helper (a pool worker is the fork server's child, and the fork server lives while its workers
  do): it watches the command's process through a pidfd and SIGKILLs itself when the command
  ends, and registers the same fork hook. In any other process it does nothing.

The helpers also ignore SIGINT (see `start_fork_server`): Ctrl-C is handled by the command alone.

So killing `corpus` kills the manager (its child) and the pool workers (watching it); the fork
server and the resource tracker then exit on their own, as their last clients are gone.
Elsewhere than Linux this is a no-op.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading

ENV = "CORPUS_COMMAND_PID"
_PR_SET_PDEATHSIG = 1
_installed = False
_forked_from_main_thread = False


def die_with_parent() -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies; True when that is set up."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        parent = os.getppid()
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    return True


def _watch(pid: int) -> None:
    """SIGKILL this process when process `pid` ends (a daemon thread blocked on its pidfd)."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError, ValueError):  # the command is gone already, or no pidfd here
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os.kill(os.getpid(), signal.SIGKILL)
        except (OSError, ValueError):
            pass
        return

    def wait_for_it() -> None:
        select.select([fd], [], [])
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=wait_for_it, name="die-with-command", daemon=True).start()


def _before_fork() -> None:
    global _forked_from_main_thread
    _forked_from_main_thread = threading.current_thread() is threading.main_thread()


def _after_fork_in_child() -> None:
    # a child forked from another thread would be killed when that thread ends: leave it alone
    if _forked_from_main_thread:
        die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's to handle (one line)


def stop_helpers() -> None:
    """Kill the helper processes still running when the command ends. After a clean run there are
    none; after Ctrl-C there can be one that datatrove had no chance to shut down (a manager whose
    start was interrupted), and the interpreter's exit would wait on it for ever."""
    for name in ("multiprocess", "multiprocessing"):
        module = sys.modules.get(name)
        if module is None:
            continue
        for child in module.active_children():
            child.kill()
            child.join(timeout=10)


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    if int(f.read().rsplit(b")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return found


def kill_fork_server() -> None:
    """SIGKILL multiprocess's fork server and the workers it forked (this command's pool)."""
    forkserver = sys.modules.get("multiprocess.forkserver")
    pid = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    if not pid:
        return
    for child in [*_children_of(pid), pid]:
        try:
            os.kill(child, signal.SIGKILL)
        except OSError:
            pass


@contextlib.contextmanager
def interrupts_stop_workers():
    """While a process pool runs: Ctrl-C first kills the workers and their fork server, then raises
    KeyboardInterrupt. Left to the pool's own shutdown, a worker still starting up could print a
    traceback after the command's one line (it finds the pool's semaphores already gone)."""
    if threading.current_thread() is not threading.main_thread() or not sys.platform.startswith("linux"):
        yield
        return

    def on_interrupt(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        kill_fork_server()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is on_interrupt:
            signal.signal(signal.SIGINT, previous)


def start_fork_server() -> None:
    """Start multiprocess's fork server with SIGINT ignored, before datatrove's pool needs it. The
    disposition survives exec, and the pool workers it forks inherit it: a Ctrl-C in the terminal
    (sent to the whole process group) is handled by the command alone, which prints one line,
    instead of by every worker, which would print a traceback each."""
    import multiprocess.forkserver

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        multiprocess.forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)


def install(command: bool = False) -> None:
    global _installed
    if _installed or not sys.platform.startswith("linux"):
        return
    if command:
        os.environ[ENV] = str(os.getpid())
    elif os.environ.get(ENV, str(os.getpid())) != str(os.getpid()):
        _watch(int(os.environ[ENV]))  # a helper of the command, maybe a grandchild
    else:
        return
    _installed = True
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
