"""``python -m engine.sweep SWEEP [--workers N] [--scheduler ADDRESS] [--retry-failed]``: the
sweep client of a planned sweep, as a process of its own (the live sweep screen spawns it and
follows the sweep directory). SIGTERM and SIGHUP stop it like Ctrl-C (the first one; later ones
are ignored while it stops, :func:`engine.signals.interrupt_on_signals`): runs in progress end
``interrupted``, the next run of the sweep continues them, and it exits ``128 + signal number``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from engine.errors import EosError
    from engine.signals import interrupt_exit_code, interrupt_on_signals
    from engine.sweep.execute import run_sweep

    parser = argparse.ArgumentParser(prog="python -m engine.sweep", description="eos-tui sweep client")
    parser.add_argument("sweep_dir")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--retry-failed", action="store_true")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        print(text, flush=True)

    def result(res: dict) -> None:
        print(f"{res.get('status')}: {res.get('rel')} ({res.get('action')}) {res.get('message', '')}", flush=True)

    try:
        with interrupt_on_signals():
            outcome = run_sweep(args.sweep_dir, workers=args.workers, scheduler=args.scheduler,
                                retry_failed=args.retry_failed, on_result=result, on_message=say)
    except KeyboardInterrupt as exc:
        print(f"interrupted: {exc or 'interrupted by SIGINT'}", flush=True)
        return interrupt_exit_code(exc)
    except EosError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    print(outcome.status.summary(), flush=True)
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
