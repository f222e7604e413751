"""The ``datacheck`` command line: parsing, printing and exit statuses only.

Heavy libraries (pandas, pyarrow, torch) are imported inside the commands, so
``datacheck --help`` stays fast.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import sys
import threading
import traceback
import warnings
from pathlib import Path

import click

from . import __version__
from .console import Consoles
from .errors import DatacheckError, ExitStatus


class DatacheckGroup(click.Group):
    """The single top-level error handler (httpie's ``main``/``program`` split).

    A :class:`DatacheckError` or a bad option becomes one line on stderr and its exit status;
    Ctrl-C exits 130; anything else is a bug: one line, exit 4, and the traceback only with
    ``--debug``.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise  # plain ``datacheck``: the help text
        except click.UsageError as exc:  # ``datacheck --bogus``: one line, like a command's bad option
            _fail(ctx, f"error: {exc.format_message()} (see 'datacheck --help')", ExitStatus.USAGE)
        except OSError as exc:  # ``datacheck --version > /dev/full``: click prints it while parsing
            if not _machine_error(exc):
                raise
            _fail(ctx, f"error: {exc.strerror or exc}", ExitStatus.USAGE)

    def invoke(self, ctx: click.Context):
        interrupts = _Interrupts()
        try:
            with interrupts:
                result = super().invoke(ctx)
        except click.UsageError as exc:  # Click's own "Usage: ... Error: ..." block, as one line
            # Click raises some parse errors of a subcommand (an option without its value) without
            # the subcommand's context: name the subcommand being run anyway.
            name = exc.ctx.info_name if exc.ctx and exc.ctx.parent else ctx.invoked_subcommand
            command = f"datacheck {name} --help" if name else "datacheck --help"
            _fail(ctx, f"error: {exc.format_message()} (see '{command}')", ExitStatus.USAGE)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except SystemExit:
            if interrupts.seen:  # a Ctrl-C that a library swallowed must not pass for success
                interrupts.fail(ctx)
            raise
        except KeyboardInterrupt:
            interrupts.fail(ctx)
        except BrokenPipeError:
            # Whoever read stdout has gone (``datacheck audit --json | head -c 10``): nothing is
            # left to say to them; exit as a process killed by SIGPIPE does, quietly.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(141)  # 128 + SIGPIPE
        except Exception as exc:  # the one place that may catch everything
            if interrupts.seen:  # e.g. "DataLoader worker exited unexpectedly": Ctrl-C reached it first
                interrupts.fail(ctx)
            if isinstance(exc, DatacheckError):
                _fail(ctx, f"error: {exc}", exc.exit_status)
            if _no_temporary_folder(exc):  # raised by tempfile for us, or in an import (torch's of dill)
                _fail(ctx, "error: no folder for temporary files can be written (tried $TMPDIR, /tmp, /var/tmp, "
                      "/usr/tmp and the working folder); set TMPDIR to a folder you can write", ExitStatus.USAGE)
            if isinstance(exc, OSError) and _machine_error(exc):  # the machine's problem, not a bug
                where = f"{exc.filename}: " if exc.filename else ""
                _fail(ctx, f"error: {where}{exc.strerror or exc}", ExitStatus.USAGE)
            if isinstance(exc, MemoryError):  # the machine's limit: name it, one line
                _fail(ctx, f"error: not enough memory{f' ({exc})' if str(exc) else ''}; use a smaller dataset, "
                      "image size or batch size, or a machine with more memory", ExitStatus.USAGE)
            if ctx.obj and ctx.obj.get("debug"):
                raise
            where = traceback.extract_tb(exc.__traceback__)[-1]
            _fail(
                ctx,
                f"internal error: {type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno}; "
                "rerun with --debug for the traceback, and please report it)",
                ExitStatus.INTERNAL_ERROR,
            )
        if interrupts.seen:
            interrupts.fail(ctx)
        return result


class _Interrupts:
    """Notice every Ctrl-C while a command runs, including one that lands inside a
    finaliser, where Python prints "Exception ignored in ..." and carries on (torch's
    DataLoader shuts its workers down in ``__del__``): such a run must still exit 130, and
    with one line, not a traceback."""

    #: Signals that stop a command as Ctrl-C does. SIGTERM (``kill``, ``timeout``, a cancelled
    #: CI job) and SIGHUP (its terminal closed) killed the main process at once, and its forked
    #: worker processes lived on, idle for ever, holding its stdout and stderr open (``datacheck
    #: augment ... | tee log`` never ended); raised as an interrupt, the command stops its
    #: workers on the way out. The exit status is then 128 + the signal's number.
    STOPPING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))

    def __init__(self):
        self.seen = False
        self.signal = None  # the last stopping signal other than Ctrl-C's

    def __enter__(self):
        self._hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        self._handlers = {}
        self._pid = os.getpid()
        if threading.current_thread() is threading.main_thread():  # signals can only be set there
            for number in (signal.SIGINT, *self.STOPPING):
                self._handlers[number] = signal.signal(number, self._interrupt)
        return self

    def __exit__(self, *exc):
        if exc[0] is None:  # else objects on the traceback (a DataLoader) may yet be finalised
            sys.unraisablehook = self._hook
        for number, handler in self._handlers.items():
            signal.signal(number, handler)

    def _interrupt(self, signum, frame):
        if os.getpid() != self._pid:
            # A forked worker inherited this handler: it ends as the signal's default would
            # have it (the main process stops its workers with SIGTERM).
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.seen = True
        if signum != signal.SIGINT:
            self.signal = signum
        raise KeyboardInterrupt

    def fail(self, ctx: click.Context):
        """Exit as an interrupted command: 130 after Ctrl-C, 128 + the signal's number after another."""
        if self.signal is None:
            _fail(ctx, "interrupted", ExitStatus.INTERRUPTED)
        name = "terminated" if self.signal == getattr(signal, "SIGTERM", None) else "hung up"
        _fail(ctx, name, 128 + self.signal)

    def _unraisable(self, unraisable):
        if issubclass(unraisable.exc_type, KeyboardInterrupt):
            self.seen = True
        else:
            self._hook(unraisable)


#: Errors of the machine, not of datacheck: a full disk or quota, a read-only file system, no
#: permission (EDQUOT is not defined everywhere).
_MACHINE_ERRNOS = {getattr(errno, name) for name in ("ENOSPC", "EROFS", "EACCES", "EPERM", "EDQUOT", "EFBIG")
                   if hasattr(errno, name)}


def _machine_error(exc: OSError) -> bool:
    """Whether ``exc`` is a file system refusing an output (Arrow's IO errors carry the errno
    in their message only)."""
    if exc.errno is not None:
        return exc.errno in _MACHINE_ERRNOS
    number = re.search(r"\[Errno (\d+)\]", str(exc))
    return number is not None and int(number.group(1)) in _MACHINE_ERRNOS


def _no_temporary_folder(exc: BaseException) -> bool:
    """Whether ``exc`` is ``tempfile``'s "No usable temporary directory found": $TMPDIR, /tmp,
    /var/tmp and the working folder all unwritable (a container with a read-only root). The
    machine's problem, not a bug: it was an internal error, exit 4."""
    return (isinstance(exc, FileNotFoundError) and exc.errno == errno.ENOENT
            and str(exc.strerror).startswith("No usable temporary directory"))


def _fail(ctx: click.Context, message: str, status: ExitStatus | int):
    # One line whatever the message quotes: a path or label with a newline (or a terminal
    # escape) in it made the error two lines, or rewrote the terminal; shown escaped, as repr does.
    message = "".join(c if c.isprintable() or c == "\t" else ascii(c)[1:-1] for c in message)
    try:
        click.echo(f"datacheck: {message}", err=True)
    except (OSError, ValueError):
        pass  # stderr cannot take the line (``2> /dev/full``): the status still says it
    ctx.exit(int(status))


@click.group(cls=DatacheckGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="datacheck")
@click.option("--debug", is_flag=True, help="Show the full traceback of unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Audit a labeled dataset and repair what the audit finds.

    Exit status: 0 ok, 1 a --fail-on gate was exceeded, 2 usage error, 3 bad data,
    4 internal error, 130 interrupted (Ctrl-C; 128 + the signal's number for SIGHUP or
    SIGTERM), 141 standard output closed by its reader.
    """
    ctx.obj = {"debug": debug}
    # Pillow's warnings about files (odd EXIF tags, palette transparency, huge images) would
    # print on stderr past -q, once per worker; datacheck reports files it cannot use itself.
    # Set before any worker starts, so the forked workers inherit it.
    warnings.filterwarnings("ignore", module=r"PIL(\.|$)")


def _print_notes(notes: list[str]) -> None:
    """One ``datacheck: note: ...`` line on stderr per note of a command's result."""
    for note in notes:
        click.echo(f"datacheck: note: {note}", err=True)


def _split_list(value: str | None) -> list[str] | None:
    # "" is an empty selection (refused with a clear message), not "the default checks".
    return [v.strip() for v in value.split(",") if v.strip()] if value is not None else None


@cli.command()
@click.argument("dataset", type=click.Path(path_type=Path, readable=False), required=False)
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Run directory [default: runs/<dataset>-<time>].")
@click.option("--checks", help="Comma-separated detectors to run; wildcards allowed ('*dup*').")
# --config is kept as typed (str, not Path): Path("./quick") is "quick", the preset's name, so a
# missing file ./quick would silently run the preset instead of being an error.
@click.option("--config", "config_path", type=click.Path(), help="TOML config file (see configs/default.toml), or a config that comes with datacheck: quick, strict-ci.")
@click.option("--seed", type=int, help="Random seed [default: 0].")
@click.option("--fail-on", help='Gates, e.g. "near_duplicates>0,split_leakage>0,dark>5%"; exceeded => exit 1.')
@click.option("--max-missing", type=click.IntRange(min=0), help="Missing files tolerated before exit 3 [default: 0].")
@click.option("--device", help="auto, cpu, cuda, cuda:N or mps [default: auto].")
@click.option("--workers", type=click.IntRange(min=0), help="Decoding worker processes [default: one per CPU, max 8].")
@click.option("--model", help="Model trained by cross-validation: convnet-small, efficientnet-lite0 (offline ImageNet weights), resnet18, ..., torchvision:<name> [default: convnet-small].")
@click.option("--weights", help="Weights file for --model (pretrained backbones); 'random' for untrained.")
@click.option("--cache-dir", help="Cache of decoded images and model outputs; 'off' disables [default: ~/.cache/datacheck].")
@click.option("--engine", help="Where decoding and per-image work run: local or ray (pip install 'datacheck[ray]') [default: local].")
@click.option("--ray-address", help="Ray cluster to join with --engine ray [default: $RAY_ADDRESS, else a local runtime].")
@click.option("--pred-probs", type=click.Path(path_type=Path), help="Out-of-fold probabilities (N, K) .npy: audit without images.")
@click.option("--labels", type=click.Path(path_type=Path), help="Given class ids (N,) .npy, with --pred-probs.")
@click.option("--embeddings", type=click.Path(path_type=Path), help="Embeddings (N, D) .npy, with --pred-probs (enables outliers).")
@click.option("--class-names", type=click.Path(path_type=Path), help="Text file of K class names, one per line.")
@click.option("--root", type=click.Path(path_type=Path), help="Folder a manifest file's paths are relative to [default: its folder].")
@click.option("--junit", type=click.Path(path_type=Path), help="Also write a JUnit XML report: one test case per check.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress or summary on stderr.")
def audit(dataset, out, checks, config_path, seed, fail_on, max_missing, device, workers, model, weights, cache_dir,
          engine, ray_address, pred_probs, labels, embeddings, class_names, root, junit, as_json, quiet):
    """Audit DATASET (a folder or a CSV/Parquet/JSONL manifest) and write a run directory.

    Or, without DATASET, audit any modality from model outputs: --pred-probs P.npy --labels L.npy.
    Writes findings.parquet, summary.json and run.json under --out and prints a summary
    of every check on stderr.
    """
    from .engine import decode_ahead

    try:
        # Inside the try: a Ctrl-C or SIGTERM that lands once the workers are started must stop
        # them too (outside it, they went on decoding up to 64 batches, and the interpreter waited
        # for them before it exited).
        if dataset is not None and pred_probs is None and embeddings is None:
            _decode_ahead(dataset, out, config_path, workers, engine)
        from .pipeline import audit as run_audit, default_out

        consoles = Consoles.create(quiet=quiet)
        if out is None and (dataset is not None or pred_probs is not None):
            out = default_out(Path(dataset if dataset is not None else pred_probs))
        with _progress(consoles) as progress:
            result = run_audit(
                dataset,
                out,
                config=config_path,
                progress=progress,
                command=["datacheck", *sys.argv[1:]],
                checks=_split_list(checks),
                seed=seed,
                fail_on=fail_on,
                max_missing=max_missing,
                device=device,
                workers=workers,
                model=model,
                weights=weights,
                cache_dir=cache_dir,
                engine=engine,
                ray_address=ray_address,
                pred_probs=pred_probs,
                labels=labels,
                embeddings=embeddings,
                class_names=class_names,
                root=root,
                junit=junit,
            )
    finally:
        decode_ahead.discard()  # not taken by the audit (other files, batches or engine), or the audit failed
    from .reporting.summary import failed_gates, print_summary

    print_summary(result.summary, result.run_dir, consoles.err)
    _print_notes(result.summary.get("notes", []))  # past --quiet: the audit may not be the one meant
    for line in failed_gates(result.summary):  # shown even with --quiet: it explains exit status 1
        click.echo(f"datacheck: {line}", err=True)
    if as_json:
        consoles.out.print_json(json.dumps({"run_dir": str(result.run_dir), **result.summary}))
    sys.exit(int(result.exit_status))


def _decode_ahead(dataset: Path, out: Path | None, config_path: str | None, workers: int | None,
                  engine: str | None) -> None:
    """Start decoding DATASET's images before the audit's libraries load
    (:mod:`datacheck.engine.decode_ahead`), where the audit will decode them in this process's
    workers: a folder, the local engine, no earlier run in ``--out`` whose statistics it may
    read back. Anything unusual (an unreadable config or folder, a bad value) starts nothing:
    the audit then says what is wrong, as it would have."""
    from .config import AUDIT_OPTIONS, ENGINE_OPTIONS, read_toml
    from .engine import decode_ahead
    from .engine.workers import default_workers
    from .folder_scan import scan_folder

    try:
        if not dataset.is_dir() or (out is not None and (out / "artifacts").exists()):
            return
        settings = read_toml(config_path) if config_path is not None else {}
        options, engine_options = settings.get("audit", {}), settings.get("engine", {})
        name = engine if engine is not None else engine_options.get("name", ENGINE_OPTIONS["name"][0])
        count = workers if workers is not None else options.get("workers", AUDIT_OPTIONS["workers"][0])
        batch_size = options.get("batch_size", AUDIT_OPTIONS["batch_size"][0])
        if name != "local" or type(count) is not int or type(batch_size) is not int or batch_size < 1:
            return
        root = dataset.resolve()
        rows, _ = scan_folder(root)
        decode_ahead.start([os.path.join(str(root), row[0]) for row in rows],
                           default_workers() if count < 0 else count, batch_size)
    except (DatacheckError, OSError, AttributeError):
        return


class _progress:
    """A rich progress bar on stderr, one task per stage; silent off a terminal."""

    def __init__(self, consoles: Consoles):
        self.console = consoles.err
        self.bar = None
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        if not self.console.is_terminal or self.console.quiet:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=self.console, transient=True)
        self.bar.start()
        return self.update

    def update(self, stage: str, done: int, total: int) -> None:
        key = stage.split(" ")[0]
        if key not in self.tasks:
            self.tasks[key] = self.bar.add_task(stage, total=total)
        self.bar.update(self.tasks[key], completed=done, total=total, description=stage)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


# --------------------------------------------------------------------------- relabel


@cli.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(path_type=Path))
@click.option("--auto", is_flag=True, help="Apply suggested labels where the evidence is strong.")
@click.option("--min-confidence", type=float, default=0.6, show_default=True,
              help="Out-of-fold probability of the suggested label that --auto requires.")
@click.option("--drop", is_flag=True, help="Remove corrupt files, off-class outliers, surplus duplicates, leaked copies.")
@click.option("--hold-out-review", is_flag=True,
              help="Leave the samples queued for review out of the new manifest until a decision is imported.")
@click.option("--export-review", type=click.Path(path_type=Path), help="Write the review queue as CSV.")
@click.option("--export-label-studio", type=click.Path(path_type=Path), help="Write the review queue as Label Studio tasks (JSON).")
@click.option("--import-review", type=click.Path(path_type=Path), help="Apply decisions from a review CSV or a Label Studio JSON export.")
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Folder for the new manifest and changes.parquet.")
@click.option("--materialize", "materialize_to", type=click.Path(path_type=Path),
              help="Write a cleaned root/<split>/<class>/ copy (hard links where possible).")
@click.option("--dataset", type=click.Path(path_type=Path), help="Where the audited dataset is now [default: as audited].")
@click.option("--json", "as_json", is_flag=True, help="Print the counts and files written as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No table on stderr.")
def relabel(run_dir, auto, min_confidence, drop, hold_out_review, export_review, export_label_studio, import_review, out,
            materialize_to, dataset, as_json, quiet):
    """Fix labels and remove bad samples found by the audit in RUN; queue the rest for review.

    Never modifies the dataset: writes a new manifest and changes.parquet (--out), a cleaned
    folder (--materialize) and review files. Without any of them, a dry run.
    """
    from .actions.relabel import action_counts
    from .actions.relabel import relabel as run_relabel
    from .reporting.summary import print_table

    consoles = Consoles.create(quiet=quiet)
    result = run_relabel(run_dir, auto=auto, drop=drop, min_confidence=min_confidence, import_review=import_review,
                         export_review=export_review, export_label_studio=export_label_studio, out=out,
                         materialize_to=materialize_to, dataset=dataset, hold_out_review=hold_out_review,
                         command=sys.argv)
    print_table(result.table, consoles.err, title="Changes per class" + ("" if result.written else " (dry run)"),
                rank=lambda t: t["relabel_out"] + t["relabel_in"] + t["drop"] + t["review"],
                more="every change: --out's changes.parquet" if not result.written.get("changes")
                else f"every change: {result.written['changes']}")
    for kind, where in result.written.items():
        consoles.err.print(f"{kind}: {where}", markup=False)
    _print_notes(result.notes)  # past --quiet: they say what the changes cost
    if as_json:
        consoles.out.print_json(json.dumps({"counts": action_counts(result.changes), "written": result.written,
                                            "notes": result.notes}))


# --------------------------------------------------------------------------- balance


@cli.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True,
              help="Plan folder: plan.parquet, plan.json and the resulting manifest.")
@click.option("--strategy", type=click.Choice(["subclusters", "classes", "coreset"]), default="subclusters",
              show_default=True, help="Groups to balance: class x sub-cluster, class, or keep the CRUST coreset.")
@click.option("--target", type=int, help="Samples per group [default: the largest group]; a plan may make the "
              "training split at most 100x its size (at least 10,000 rows): bound it with --max-total.")
@click.option("--budget", type=float, help="--strategy coreset: fraction of each class kept [default: 0.5].")
@click.option("--drop-flagged", is_flag=True, help="First drop label issues, corrupt files and surplus duplicates.")
@click.option("--max-total", type=int, help="Cap on the rows of the result, all splits and copies included.")
@click.option("--seed", type=int, help="Seed of every random choice [default: the audit's seed].")
@click.option("--dataset", type=click.Path(path_type=Path), help="Where the audited dataset is now [default: as audited].")
@click.option("--json", "as_json", is_flag=True, help="Print counts per action and the files written as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No table on stderr.")
def balance(run_dir, out, strategy, target, budget, drop_flagged, max_total, seed, dataset, as_json, quiet):
    """Plan a balanced training set from the audit in RUN: keep, drop or augment each sample.

    Never modifies the dataset: writes plan.parquet, plan.json and the resulting manifest
    into --out; datacheck augment makes the planned copies.
    """
    from .actions.augment import DEFAULT_SPEC
    from .actions.balance import BalanceOptions
    from .actions.balance import balance as run_balance
    from .reporting.summary import print_table

    consoles = Consoles.create(quiet=quiet)
    options = BalanceOptions(strategy=strategy, target=target, budget=budget, drop_flagged=drop_flagged,
                             max_total=max_total, seed=seed, transform=dict(DEFAULT_SPEC))
    result = run_balance(run_dir, out, options, dataset=dataset, command=sys.argv)
    print_table(result.table, consoles.err, title=f"Training samples per class ({strategy})",
                rank=lambda t: t["flagged"] + t["trimmed"] + t["copies"], more="every row: --out's plan")
    for kind, where in result.written.items():
        consoles.err.print(f"{kind}: {where}", markup=False)
    _print_notes(result.notes)  # past --quiet, as fix's: they say what the plan could not do
    if as_json:
        counts = {a: int((result.plan["action"] == a).sum()) for a in ("keep", "drop", "augment")}
        counts["copies"] = int(result.plan["copies"].sum())
        consoles.out.print_json(json.dumps({"counts": counts, "written": result.written, "notes": result.notes}))


# --------------------------------------------------------------------------- augment


@cli.command()
@click.argument("plan_dir", metavar="PLAN", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True,
              help="New folder: the kept originals (hard links) and the copies as root/<split>/<class>/, manifest.csv.")
@click.option("--policy", type=click.Choice(["randaugment", "affine", "both"]), help="Transforms applied [default: both].")
@click.option("--num-ops", type=int, help="RandAugment operations per copy [default: 2].")
@click.option("--magnitude", type=int, help="RandAugment magnitude, 0-30 [default: 9].")
@click.option("--exclude-ops", help="RandAugment operations to leave out, comma-separated (e.g. Solarize,Equalize).")
@click.option("--degrees", type=float, help="Affine rotation range, +/- degrees [default: 15].")
@click.option("--translate", type=float, help="Affine translation range, fraction of width/height [default: 0.1].")
@click.option("--scale", type=(float, float), default=None, help="Affine scale range MIN MAX [default: 0.9 1.1].")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), help="Seed of the copies [default: the plan's seed].")
@click.option("--resume", is_flag=True, help="Continue an interrupted augment into the same --out, keeping finished files.")
@click.option("--boost-from", type=click.Path(path_type=Path),
              help="Audit run: add the candidate copies nearest to the val samples its model gets wrong.")
@click.option("--boost-budget", type=click.IntRange(min=1), help="Boosting copies to add [default: 5 per wrong val sample].")
@click.option("--boost-pool", type=click.IntRange(min=1),
              help="Boosting candidates drawn per training sample, at most 64 [default: 4].")
@click.option("--screen/--no-screen", default=True,
              help="Draw a copy again while the plan's audit would flag it (dark, blurry, ...) but not its source, "
                   "or pair it with its source as a near duplicate [default: screen].")
@click.option("--workers", type=click.IntRange(min=0), help="Worker processes [default: one per CPU, max 8].")
@click.option("--dataset", type=click.Path(path_type=Path), help="Where the audited dataset is now [default: as audited].")
@click.option("--json", "as_json", is_flag=True, help="Print the counts and files written as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress or counts on stderr.")
def augment(plan_dir, out, policy, num_ops, magnitude, exclude_ops, degrees, translate, scale, seed, resume, boost_from,
            boost_budget, boost_pool, screen, workers, dataset, as_json, quiet):
    """Make the augmented copies a balance PLAN schedules, into a new dataset folder --out.

    Deterministic: the same plan, seed and settings write byte-identical files.
    """
    from .actions.augment import augment as run_augment
    from .engine.workers import default_workers

    given = [flag for flag, value in (("--boost-budget", boost_budget), ("--boost-pool", boost_pool)) if value is not None]
    if given and boost_from is None:  # else silently ignored: no boosting copies
        raise click.UsageError(f"{given[0]} needs --boost-from RUN (the audit whose model's validation errors the "
                               "boosting copies are chosen for)")
    consoles = Consoles.create(quiet=quiet)
    spec = {"policy": policy, "num_ops": num_ops, "magnitude": magnitude, "degrees": degrees, "translate": translate,
            "scale": list(scale) if scale else None,
            "exclude_ops": [op.strip() for op in exclude_ops.split(",") if op.strip()] if exclude_ops else None}
    with _progress(consoles) as progress:
        result = run_augment(plan_dir, out, seed=seed, spec=spec, resume=resume,
                             workers=default_workers() if workers is None else workers, dataset=dataset,
                             boost_from=boost_from, boost_budget=boost_budget, boost_pool=boost_pool, screen=screen,
                             progress=(lambda done, total: progress("augment", done, total)) if progress else None,
                             command=sys.argv)
    c = result.counts
    consoles.err.print(f"{c['augmented']} augmented copies ({c['boosted']} of them boosting; {c['written']} written now), "
                       f"{c['originals']} originals "
                       f"({c['linked']} linked, {c['copied']} copied); dataset: {result.written['folder']}", markup=False)
    if c.get("skipped_unlabeled"):  # past --quiet: a split of them vanished from the dataset
        _print_notes([f"{c['skipped_unlabeled']} unlabeled row(s) of the plan are not in {result.written['folder']}: "
                      "beside class folders a folder dataset has no place for images without a class"])
    if as_json:
        consoles.out.print_json(json.dumps({"counts": c, "written": result.written}))


# --------------------------------------------------------------------------- fix


@cli.command()
@click.argument("dataset", type=click.Path(path_type=Path, readable=False))
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True,
              help="Fix folder: dataset/, manifest.csv, review.csv, summary.json, steps/; rerun to continue it.")
@click.option("--root", type=click.Path(path_type=Path), help="Folder a manifest file's paths are relative to [default: its folder].")
@click.option("--budget", type=int, help="Rows of the result, all splits and copies [default: the dataset's rows].")
@click.option("--config", "config_path", type=click.Path(),  # as typed: see audit's --config
              help="TOML: [fix] and [augment] (see README, fix's --config) and the audit's sections "
                   "(see configs/default.toml); or quick, strict-ci.")
@click.option("--seed", type=int, help="Seed of the audits, the plan and the copies [default: 0].")
@click.option("--no-relabel", is_flag=True, help="No relabel step: no label changes, repair drops or second audit (balancing still leaves out "
                   "flagged samples unless [fix] drop_flagged = false).")
@click.option("--no-balance", is_flag=True, help="No sub-cluster balancing: every class grows by the same factor.")
@click.option("--no-augment", is_flag=True, help="No augmented copies (nor boosting): the budget can only trim.")
@click.option("--no-boost", is_flag=True, help="No data-boosting copies.")
@click.option("--max-missing", type=click.IntRange(min=0), help="Missing files tolerated before exit 3 [default: 0].")
@click.option("--device", help="auto, cpu, cuda, cuda:N or mps [default: auto].")
@click.option("--workers", type=click.IntRange(min=0), help="Worker processes [default: one per CPU, max 8].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress or tables on stderr.")
def fix(dataset, out, root, budget, config_path, seed, no_relabel, no_balance, no_augment, no_boost, max_missing, device,
        workers, as_json, quiet):
    """Audit DATASET, repair it, balance it to --budget rows, augment and boost it, audit the result.

    Never modifies DATASET. Writes a complete dataset folder with a provenance manifest, the
    review queue and a before/after summary into --out; an interrupted fix continues when run again.
    """
    from .actions.fix import fix as run_fix
    from .reporting.summary import print_table

    consoles = Consoles.create(quiet=quiet)
    with _progress(consoles) as progress:
        result = run_fix(dataset, out, root=root, budget=budget, config=config_path, seed=seed, relabel=not no_relabel,
                         balance=not no_balance, augment=not no_augment, boost=not no_boost, workers=workers,
                         device=device, max_missing=max_missing, progress=progress, command=["datacheck", *sys.argv[1:]])
    s = result.summary
    import pandas as pd

    steps = pd.DataFrame({name: {"status": e["status"], "seconds": "" if e["seconds"] is None else f"{e['seconds']:.0f}"}
                          for name, e in s["steps"].items()}).T.rename_axis("step")
    print_table(steps, consoles.err, title="Steps")
    # Row by row: built by column and transposed, a row with a null (`after` of a model check)
    # turned its counts into floats, `23.0`.
    checks = pd.DataFrame.from_records([{stage: "-" if n is None else n for stage, n in counts.items()}
                                        for counts in s["checks"].values()], index=list(s["checks"]))
    checks = checks.astype(object).fillna("-").rename_axis("check")
    print_table(checks[(checks != 0).any(axis=1)], consoles.err, title="Samples flagged per check")
    print_table(result.table, consoles.err, title="Rows per class", rank=lambda t: (t["after"] - t["before"]).abs()
                + t["relabel_out"] + t["relabel_in"] + t["removed"], more="every row: the fix's manifest.csv")
    actions = ", ".join(f"{n} {a}" for a, n in s["changes"]["actions"].items())
    consoles.err.print(f"{s['rows']} rows for a budget of {s['budget']} ({actions}); review queue: "
                       f"{s['changes'].get('review_queue', 0)}; written to {result.out}", markup=False)
    _print_notes(result.notes)  # past --quiet too: they say what the fix could not do
    if as_json:
        consoles.out.print_json(json.dumps({"out": str(result.out), **s}))
    sys.exit(int(result.exit_status))


# --------------------------------------------------------------------------- report


@cli.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), help="HTML file to write [default: RUN/report.html].")
@click.option("--max-thumbnails", type=click.IntRange(min=0), default=2000, show_default=True,
              help="Distinct images embedded at most (bounds the file size; 0 = none).")
@click.option("--gallery-size", type=click.IntRange(min=0), default=24, show_default=True,
              help="Worst flagged samples shown per check.")
@click.option("--max-table-rows", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="Findings table rows at most; bigger runs list only flagged rows, worst first.")
@click.option("--csv", "with_csv", is_flag=True, help="Also write findings.csv beside the HTML file.")
@click.option("--dataset", type=click.Path(path_type=Path), help="Where the audited images are now, if they moved.")
@click.option("--quiet", "-q", is_flag=True, help="Say nothing on stderr but errors.")
def report(run_dir, out, max_thumbnails, gallery_size, max_table_rows, with_csv, dataset, quiet):
    """Write RUN's audit as one self-contained HTML file (no network needed to view it)."""
    from .reporting.html import write_report

    result = write_report(run_dir, out, max_thumbnails=max_thumbnails, csv=with_csv, gallery_size=gallery_size,
                          max_table_rows=max_table_rows, dataset=dataset, command=sys.argv)
    if quiet:
        return
    _print_notes(result.notes)
    click.echo(f"report written to {result.html} ({result.size_bytes / 1e6:.1f} MB, "
               f"{result.thumbnails} thumbnails, {result.table_rows:,} of {result.findings_rows:,} findings rows)", err=True)
    if result.csv is not None:
        click.echo(f"findings CSV written to {result.csv}", err=True)
