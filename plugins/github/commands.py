"""`lettafleet github plan|apply|drift`: the steps of the GitHub Action (action.yml), which stays a thin wrapper. The
plugin contributes the `github` group through `lettafleet_commands`."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import rich_click as click

from lettafleet.core import (
    Duration,
    PluginCommand,
    Stopping,
    ctrl_c_stops,
    exit_code,
    get_plugin_manager,
    hookimpl,
    make_client,
    reports_errors,
    resource_kinds,
    server_options,
)
from lettafleet.plugins.github.actions import ActionsEnvironment, ActionsEnvironmentError, annotation
from lettafleet.plugins.github.api import GitHubAPI, GitHubError
from lettafleet.plugins.github.comments import DEFAULT_COMMENT_AUTHOR
from lettafleet.plugins.github.review import LettaPlanner, ReviewLoop, ReviewOptions

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def github() -> None:
    """Steps for a GitHub Actions job (the lettafleet action runs these).

    They read the job's variables (GITHUB_EVENT_PATH, GITHUB_REPOSITORY, GITHUB_SHA, GITHUB_OUTPUT,
    GITHUB_STEP_SUMMARY, GITHUB_API_URL) and the secrets LETTA_API_KEY and GITHUB_TOKEN from the environment only.
    """


def _review_options(command: F) -> F:
    command = click.option(
        "--comment/--no-comment",
        envvar="LETTAFLEET_COMMENT",
        default=True,
        show_default=True,
        help="Write the plan (and later the apply result) to the pull request.",
    )(command)
    return _fleet_options(command)


def _fleet_options(command: F) -> F:
    command = click.option(
        "--out-dir",
        envvar="LETTAFLEET_OUT_DIR",
        type=click.Path(file_okay=False, path_type=Path),
        help="Where plan JSON files go [default: $RUNNER_TEMP/lettafleet, else .lettafleet/github].",
    )(command)
    command = click.option(
        "--comment-author",
        envvar="LETTAFLEET_COMMENT_AUTHOR",
        default=DEFAULT_COMMENT_AUTHOR,
        show_default=True,
        help="The GitHub login the token comments as. Only this author's comments hold reviewed plans (and only "
        "this author's issue is the drift issue); a marker in anyone else's is ignored, and lettafleet never edits "
        "theirs. With a GitHub App token, use the app's `<slug>[bot]`; with a personal token, its user.",
    )(command)
    command = click.option(
        "-f",
        "--fleet",
        "fleets",
        envvar="LETTAFLEET_FLEET",
        multiple=True,
        required=True,
        help="Fleet file; repeat for several (env LETTAFLEET_FLEET: separated by whitespace).",
    )(command)
    return server_options(command)


def _reports_github_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ActionsEnvironmentError, GitHubError) as error:
            click.echo(annotation("error", str(error)), err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]  # functools.wraps keeps the signature of the command it wraps


@github.command("plan")
@_review_options
@click.option(
    "--comment-when-unchanged/--no-comment-when-unchanged",
    envvar="LETTAFLEET_COMMENT_WHEN_UNCHANGED",
    default=True,
    show_default=True,
    help="Also comment when the plan changes nothing (an existing comment is always kept up to date).",
)
@reports_errors
@_reports_github_errors
def plan_command(
    fleets: tuple[str, ...],
    base_url: str,
    comment: bool,
    comment_author: str,
    out_dir: Path | None,
    comment_when_unchanged: bool,
) -> None:
    """Plan each fleet for the pull request: job summary, step outputs, and one sticky comment per fleet.

    Exit 0 when every plan succeeded (with or without changes), 1 otherwise.
    """
    options = ReviewOptions(
        out_dir=out_dir,
        comment=comment,
        comment_author=comment_author,
        comment_when_unchanged=comment_when_unchanged,
    )
    sys.exit(_run(base_url, options, lambda loop: loop.plan(_split(fleets))))


@github.command("apply")
@_review_options
@click.option(
    "--parallelism",
    envvar="LETTAFLEET_PARALLELISM",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="How many changes run at once.",
)
@click.option(
    "--apply-unreviewed-changes",
    envvar="LETTAFLEET_APPLY_UNREVIEWED_CHANGES",
    is_flag=True,
    help="Apply even when the plan is not the one reviewed on the merged pull request.",
)
@click.option(
    "--lock-timeout",
    envvar="LETTAFLEET_LOCK_TIMEOUT",
    type=Duration(),
    default="0s",
    show_default=True,
    help="How long to wait while another apply holds a fleet's lock (e.g. 5m); 0s fails that fleet at once. "
    "Each fleet's lock is the one `lettafleet apply` takes: `fleet:NAME` for a named fleet, else its path in the "
    "repository.",
)
@click.option(
    "--lock/--no-lock",
    "use_lock",
    envvar="LETTAFLEET_LOCK",
    default=True,
    show_default=True,
    help="Take each fleet's lock on the server while planning and applying it (docs/locking.md).",
)
@reports_errors
@_reports_github_errors
def apply_command(
    fleets: tuple[str, ...],
    base_url: str,
    comment: bool,
    comment_author: str,
    out_dir: Path | None,
    parallelism: int,
    apply_unreviewed_changes: bool,
    lock_timeout: float,
    use_lock: bool,
) -> None:
    """Apply each fleet after a merge, if its plan is still the one reviewed in the pull request's comment.

    Finds the merged pull request from GITHUB_SHA, plans again and compares the plan's hash with the reviewed
    one. Different: nothing is applied and the exit code is 1. The result is added to the comment. Each fleet
    is planned and applied under its lock, the one `lettafleet apply` takes.
    """
    options = ReviewOptions(
        out_dir=out_dir,
        comment=comment,
        comment_author=comment_author,
        parallelism=parallelism,
        apply_unreviewed_changes=apply_unreviewed_changes,
    )
    lock = lock_timeout if use_lock else None
    stopping = Stopping()
    sys.exit(_run(base_url, options, lambda loop: loop.apply(_split(fleets)), lock_timeout=lock, stopping=stopping))


@github.command("drift")
@_fleet_options
@click.option(
    "--issue/--no-issue",
    envvar="LETTAFLEET_COMMENT",
    default=True,
    show_default=True,
    help="Open or update one issue when the server drifted, and close it when it matches again "
    "(needs `permissions: issues: write`).",
)
@click.option(
    "--fail-on-drift/--no-fail-on-drift",
    envvar="LETTAFLEET_FAIL_ON_DRIFT",
    default=True,
    show_default=True,
    help="Exit 1 when any fleet needs attention (changes, drift or ambiguities).",
)
@reports_errors
@_reports_github_errors
def drift_command(
    fleets: tuple[str, ...],
    base_url: str,
    comment_author: str,
    out_dir: Path | None,
    issue: bool,
    fail_on_drift: bool,
) -> None:
    """Check on a schedule that the server still matches each fleet file (read-only, no lock).

    When a plan needs attention, one issue says which fleets drifted and shows their plans; it is updated by later
    checks and closed when the server matches again. Exit 1 when a fleet drifted (unless --no-fail-on-drift) or
    a plan failed, else 0.
    """
    options = ReviewOptions(out_dir=out_dir, comment=issue, comment_author=comment_author, fail_on_drift=fail_on_drift)
    sys.exit(_run(base_url, options, lambda loop: loop.drift(_split(fleets))))


def _run(
    base_url: str,
    options: ReviewOptions,
    step: Callable[[ReviewLoop], int],
    lock_timeout: float | None = None,
    stopping: Stopping | None = None,
) -> int:
    """Run one step of the review loop; with a `lock_timeout`, each fleet is applied under its lock. With
    `stopping`, Ctrl-C stops the step as it stops `lettafleet apply` (the same handling, the same exit 130)."""
    env = ActionsEnvironment.from_environ()
    manager = get_plugin_manager()
    with contextlib.ExitStack() as stack:
        api = stack.enter_context(GitHubAPI(env.repository, env.token, api_url=env.api_url)) if env.token else None
        client = stack.enter_context(make_client(base_url))
        lock_client = stack.enter_context(make_client(base_url)) if lock_timeout is not None else None
        planner = LettaPlanner(client, manager, lock_client, lock_timeout or 0.0, echo=click.echo, stopping=stopping)
        loop = ReviewLoop(env, planner, resource_kinds(manager), api, options, click.echo, stopping=stopping)
        if stopping is None:
            return step(loop)
        with ctrl_c_stops(stopping, at_once=planner.release_at_once):
            code = step(loop)
        return exit_code(None, stopping, failed=code != 0)


def _split(fleets: tuple[str, ...]) -> list[str]:
    """Fleet paths from repeated options and from a multi-line action input alike, each once, in order."""
    return list(dict.fromkeys(path for value in fleets for path in value.split()))


@hookimpl
def lettafleet_commands() -> Iterable[PluginCommand]:
    return [PluginCommand(github)]
