"""``chaosregistry report`` and ``chaosregistry trend``.

The main CLI registers ``report_command`` and ``trend_command``; ``python -m
chaosregistry.reports`` runs them on their own. Bad input (a file that is not a journal, a
truncated one, a directory without runs) prints one ``Error: ...`` line naming the file and
exits 1; ``report`` otherwise exits with the verdict's game-day code (0, 10, 11, 12, 13, 14).
"""

from pathlib import Path

import click

from chaosregistry.cli_errors import one_line_errors


@click.command("report")
@click.argument("journals", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output-dir",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write the report (default: the first journal's directory).",
)
@click.option(
    "--load-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="A pull load's stats directory (with timeseries.json), or a directory of them.",
)
def report_command(journals: tuple[Path, ...], out_dir: Path | None, load_dir: Path | None) -> None:
    """Write report.html, summary.json, junit.xml and summary.md for JOURNAL(s).

    Exits with the verdict's code: 0 passed, 10 deviated, 11 failed, 12 interrupted,
    13 left-behind, 14 dry-run (the most urgent over several journals); 1 for bad input.
    A journal without the gameday.json its game day wrote beside it is never passed.
    """
    from chaosregistry.reports import build_report

    target = out_dir or journals[0].parent
    with one_line_errors():
        try:
            result = build_report(list(journals), target, load_dir=load_dir)
        except OSError as exc:
            raise click.ClickException(
                f"{target}: cannot write the report: {exc.strerror or exc}"
            ) from None
    score = "-" if result.score is None else f"{result.score:.1f}"
    click.echo(
        f"report: {result.verdict} (exit {result.exit_code}), score {score} -> {result.html}"
    )
    click.echo(
        f"        also {result.summary_json.name}, {result.junit_xml.name}, "
        f"{result.summary_md.name} in {result.out_dir}"
    )
    raise SystemExit(result.exit_code)


@click.command("trend")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output-dir",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to write trend.html and trend.json.",
)
def trend_command(run_dirs: tuple[Path, ...], out_dir: Path) -> None:
    """Chart the score, recovery and probes across RUN_DIR(s).

    Each RUN_DIR holds a summary.json (written by ``report``) or a journal.json.
    """
    from chaosregistry.reports import build_trend

    with one_line_errors():
        try:
            result = build_trend(list(run_dirs), out_dir)
        except OSError as exc:
            raise click.ClickException(
                f"{out_dir}: cannot write the trend: {exc.strerror or exc}"
            ) from None
    click.echo(f"trend: {result.runs} run(s) -> {result.html} (and {result.trend_json.name})")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Game-day reports (``report``) and trends across runs (``trend``)."""


main.add_command(report_command)
main.add_command(trend_command)
