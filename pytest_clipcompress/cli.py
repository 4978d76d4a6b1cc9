"""Command line for results files, without a pytest session.

* ``compare OLD.json NEW.json [--fail-on-regression 0.01] [--html PATH]``: each evaluation of NEW
  beside OLD's on the same images (paired change, its 95% interval, discordant pairs, exact
  McNemar p), as a text table and optionally an HTML page. Exit 0
  when nothing regressed, 1 when something did (only with ``--fail-on-regression``), 2 when the
  files cannot be compared (bad file, different images, nothing in common).
* ``report RESULTS.json --out DIR [--summary PATH]``: the report folder of a results file, and
  its Markdown summary (also appended to ``$GITHUB_STEP_SUMMARY`` on GitHub Actions).
* ``merge SHARD.json ... -o RESULTS.json``: the results files of one run's shards (a CI matrix) as
  one file, as one machine running every test would have written it; files of different runs are
  refused (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .compare import DEFAULT_MARGIN, QUANTITY_NAMES, check_margin, compare_files, describe
from .errors import ClipCompressError
from .render.terminal import comparison_table
from .results.file import GateError, load_results_file
from .results.schema import ComparisonRow

EXIT_OK, EXIT_REGRESSED, EXIT_ERROR = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clipcompress", description="Compare pytest-clipcompress results files and render their reports.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    compare = commands.add_parser("compare", help="compare two results files image by image (exit 1 on regression)")
    compare.add_argument("old", type=Path, metavar="OLD.json", help="the reference run, e.g. the last release's results or baseline")
    compare.add_argument("new", type=Path, metavar="NEW.json", help="the run to check")
    compare.add_argument(
        "--fail-on-regression",
        type=float,
        metavar="MARGIN",
        help="exit 1 when an evaluation regressed: its clean accuracy, accuracy under compression or drop worsened by more than MARGIN "
        "(0.01 = 1 point) and the test says so",
    )
    compare.add_argument(
        "--margin",
        type=float,
        default=DEFAULT_MARGIN,
        help=f"the verdicts' margin without --fail-on-regression (default: {DEFAULT_MARGIN}, 1 point)",
    )
    compare.add_argument("--alpha", type=float, default=0.05, help="significance level of the tests (default: 0.05)")
    compare.add_argument("--old-model", metavar="ID", help="compare this model id (role or name) of OLD ...")
    compare.add_argument("--new-model", metavar="ID", help="... with this one of NEW (e.g. release and candidate from one run)")
    compare.add_argument("--html", type=Path, metavar="PATH", help="also write the table as a standalone HTML page")
    report = commands.add_parser("report", help="write the report folder (index.html, charts) of a results file")
    report.add_argument("results", type=Path, metavar="RESULTS.json")
    report.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write index.html and charts/ into")
    report.add_argument("--summary", type=Path, metavar="PATH", help="also write the Markdown summary (and append it to $GITHUB_STEP_SUMMARY when set)")
    merge = commands.add_parser("merge", help="join the results files of one run's shards into one results file")
    merge.add_argument("shards", type=Path, nargs="+", metavar="SHARD.json", help="the shards' results files (--clip-results of each)")
    merge.add_argument("-o", "--output", type=Path, required=True, metavar="RESULTS.json", help="the merged results file to write")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"compare": compare, "report": report, "merge": merge}[args.command](args)
    except ClipCompressError as error:
        print(f"clipcompress {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR


def compare(args: argparse.Namespace) -> int:
    margin = args.margin if args.fail_on_regression is None else args.fail_on_regression
    check_margin(margin, args.alpha, ("--fail-on-regression " if args.fail_on_regression is not None else "--margin ", "--alpha "))
    old_file, new_file = load_results_file(args.old, "OLD"), load_results_file(args.new, "NEW")
    result = compare_files(old_file.evaluations, new_file.evaluations, args.old_model, args.new_model, margin, args.alpha)
    if not result.rows:
        raise GateError(
            f"{args.new} and {args.old} have no evaluation in common (same model id, dataset and compression); "
            "use --old-model/--new-model to pair different model ids"
        )
    sides = [("old", f"{args.old}: {old_file.checkpoints()}"), ("new", f"{args.new}: {new_file.checkpoints()}")]
    for name, label in sides:
        print(f"{name}: {label}")
    for line in comparison_table(result.rows, "old", "new"):
        print(line)
    if args.html is not None:
        write_html(args.html, result.rows, margin, args.alpha, sides)
    for label, records in (("only in OLD", result.only_old), ("only in NEW", result.only_new)):
        if records:
            print(f"{label}: " + "; ".join(describe(record) for record in records))
    broken = [row for row in result.rows if "error" in row]
    if broken:
        print(f"clipcompress compare: error: {len(broken)} evaluation(s) are not comparable image by image (see above)", file=sys.stderr)
        return EXIT_ERROR
    if args.fail_on_regression is None:
        return EXIT_OK
    regressed = [row for row in result.rows if row.get("verdict") == "regressed"]
    for row in regressed:
        lost = ", ".join(
            f"{QUANTITY_NAMES[c['quantity']]} {c['change'] * 100:+.2f} points (p={c['p_value']:.3g})" for c in row["changes"] if c["verdict"] == "regressed"
        )
        print(f"REGRESSED {row['candidate_role']} on {row['dataset']} under {row['compression_id']}: {lost}; classes lost {row['classes_lost']}")
    if regressed:
        return EXIT_REGRESSED
    print(f"no regression beyond {args.fail_on_regression * 100:.2f} points (alpha {args.alpha:g})")
    return EXIT_OK


def write_html(path: Path, rows: list[ComparisonRow], margin: float, alpha: float, sides: list[tuple[str, str]]) -> None:
    from .files import atomic_write_text
    from .render.comparison import comparison_html

    try:
        atomic_write_text(path, comparison_html(rows, margin=margin, alpha=alpha, sides=sides))
    except OSError as error:
        raise GateError(f"cannot write --html {path} ({error.strerror or error})") from None
    print(f"html: {path}")


def report(args: argparse.Namespace) -> int:
    from .render import write_report_dir

    results = load_results_file(args.results, "RESULTS")
    try:
        index = write_report_dir(args.out, results.evaluations, results.checks, [], breaking_points=results.breaking_points)
    except OSError as error:
        print(f"clipcompress report: error: cannot write {args.out} ({error.strerror or error})", file=sys.stderr)
        return EXIT_ERROR
    print(f"report: {index}")
    if args.summary is not None:
        from .render.markdown import summary_markdown, write_summary

        text = summary_markdown(results.evaluations, results.checks, results.breaking_points, run=results.run)
        for note in write_summary(text, args.summary):
            print(f"clipcompress report: error: {note}", file=sys.stderr)
            return EXIT_ERROR
        print(f"summary: {args.summary}")
    return EXIT_OK


def merge(args: argparse.Namespace) -> int:
    from .files import atomic_write_text
    from .results.merge import MergeError, merge_results

    files = [load_results_file(path, "SHARD") for path in args.shards]
    merged = merge_results(files)
    try:
        atomic_write_text(args.output, merged.to_json())
    except OSError as error:
        raise MergeError(f"cannot write {args.output} ({error.strerror or error})") from None
    print(f"merged {len(files)} results file(s), {len(merged.records)} evaluations, {len(merged.checks)} checks: {args.output}")
    return EXIT_OK
