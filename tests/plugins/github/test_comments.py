"""The sticky plan comment: its hidden marker, finding it again, and saying what differs from the reviewed plan."""

from __future__ import annotations

from dataclasses import replace

from lettafleet.core.engine.model import Action, Change, Plan
from lettafleet.core.render.markdown import COMMENT_LIMIT
from lettafleet.plugins.github.api import GitHubAPI
from lettafleet.plugins.github.comments import (
    STATUS_MARKER,
    PlanMarker,
    StickyComments,
    differences,
    status_room,
    with_status,
    written_by,
)
from tests.fakes.github_api import BOT, MALLORY, OCTOCAT, FakeGitHub, running_github_api


def plan_of(*names: str, description: str = "helpful") -> Plan:
    changes = []
    for name in names:
        changes.append(Change(f"agent.{name}", "agent", name, Action.CREATE, None, {"description": description}))
        changes.append(
            Change(
                f"agent.{name}.block.faq", "block", "faq", Action.CREATE, None, {"value": "x"}, parent=f"agent.{name}"
            )
        )
    return Plan.build("fleet.yaml", "http://127.0.0.1:8283", changes)


def test_the_marker_reads_back_what_it_was_written_with() -> None:
    plan = plan_of("a", "b")
    marker = PlanMarker.of_plan("fleets/support agents.yaml", plan)

    found = PlanMarker.find(f"{marker.render()}\ntext after")

    assert found == marker
    assert found is not None and found.sha256 == plan.sha256


def test_a_marker_counts_only_at_the_start_of_a_comment() -> None:
    marker = PlanMarker(fleet="fleet.yaml", sha256="a" * 64).render()

    assert PlanMarker.find(f"> quoted\n{marker}") is None
    assert PlanMarker.find(f"```\n{marker}\n```") is None


def test_the_marker_is_one_hidden_html_comment_whatever_the_path() -> None:
    rendered = PlanMarker(fleet='odd -->"path".yaml', sha256=None).render()

    assert rendered.startswith("<!-- ") and rendered.endswith(" -->")
    assert "-->" not in rendered[4:-4]
    assert PlanMarker.find(rendered) == PlanMarker(fleet='odd -->"path".yaml', sha256=None)


def test_fleet_paths_are_compared_normalized() -> None:
    with running_github_api() as github:
        github.add_comment(3, PlanMarker(fleet="./fleets//support.yaml", sha256="f" * 64).render(), BOT)
        with GitHubAPI(github.repository, github.token, api_url=github.url) as api:
            comments = StickyComments(api, 3)

    reviewed = comments.reviewed_plan("fleets/support.yaml")
    assert reviewed is not None and reviewed.sha256 == "f" * 64


def test_the_sticky_comment_is_found_on_a_later_page() -> None:
    with running_github_api(FakeGitHub(max_per_page=2)) as github:
        for number in range(3):
            github.add_comment(3, f"chatter {number}")
        sticky = github.add_comment(3, PlanMarker(fleet="fleet.yaml", sha256="a" * 64).render(), BOT)
        with GitHubAPI(github.repository, github.token, api_url=github.url) as api:
            comments = StickyComments(api, 3)

    found = comments.find("fleet.yaml")
    assert found is not None and found["id"] == sticky["id"]


def test_each_fleet_file_has_its_own_comment() -> None:
    with running_github_api() as github:
        github.add_comment(3, PlanMarker(fleet="a.yaml", sha256="a" * 64).render(), BOT)
        github.add_comment(3, PlanMarker(fleet="b.yaml", sha256="b" * 64).render(), BOT)
        with GitHubAPI(github.repository, github.token, api_url=github.url) as api:
            comments = StickyComments(api, 3)
            comments.upsert("b.yaml", "new body for b")

        assert [comment["body"] for comment in github.comments_on(3)][1] == "new body for b"
        assert len(github.comments_on(3)) == 2


def test_differences_name_the_agents_that_plan_differently() -> None:
    reviewed = PlanMarker.of_plan("fleet.yaml", plan_of("kept", "changed", "dropped"))
    now = plan_of("kept", "changed", "added")
    now = replace(
        now,
        changes=tuple(
            replace(change, after={"description": "other"}) if change.address == "agent.changed" else change
            for change in now.changes
        ),
    )

    listed = differences(reviewed, now)

    assert listed == [
        "`agent.added` is new in the plan since the review",
        "`agent.changed` plans differently now",
        "`agent.dropped` was in the reviewed plan and is not any more",
    ]


def test_a_marker_without_fingerprints_still_explains_itself() -> None:
    listed = differences(PlanMarker(fleet="fleet.yaml", sha256="a" * 64), plan_of("a"))

    assert "only its hash can be compared" in listed[0]


def test_a_new_status_replaces_the_previous_one() -> None:
    body = with_status("the plan", "### Applied\nfirst")

    again = with_status(body, "### Apply failed\nsecond")

    assert again == f"the plan\n\n{STATUS_MARKER}\n### Apply failed\nsecond\n"


def test_status_room_keeps_the_comment_under_the_limit() -> None:
    body = "x" * 60_000

    room = status_room(body)

    assert len(with_status(body, "y" * room)) <= COMMENT_LIMIT


def test_only_the_trusted_authors_comments_count() -> None:
    with running_github_api() as github:
        forged = github.add_comment(3, PlanMarker(fleet="fleet.yaml", sha256="f" * 64).render(), MALLORY)
        own = github.add_comment(3, PlanMarker(fleet="fleet.yaml", sha256="a" * 64).render(), BOT)
        with GitHubAPI(github.repository, github.token, api_url=github.url) as api:
            comments = StickyComments(api, 3)

    reviewed = comments.reviewed_plan("fleet.yaml")
    assert reviewed is not None and reviewed.sha256 == "a" * 64
    assert [comment["id"] for comment in comments.ignored] == [forged["id"]]
    assert own["id"] != forged["id"]


def test_the_author_is_compared_as_github_compares_logins() -> None:
    comment = {"user": {"login": "GitHub-Actions[bot]", "type": "Bot"}}

    assert written_by(comment, "github-actions[bot]")
    assert not written_by({"user": OCTOCAT}, "github-actions[bot]")
    assert not written_by({"body": "no user"}, "github-actions[bot]")


def test_a_user_whose_login_looks_like_the_bots_is_not_the_bot() -> None:
    impostor = {"user": {"login": "github-actions[bot]", "id": 666, "type": "User"}}

    assert not written_by(impostor, "github-actions[bot]")
    assert written_by({"user": {"login": "octocat", "type": "User"}}, "octocat")  # a person's login needs no type


def test_a_new_comment_is_created_rather_than_another_authors_edited() -> None:
    with running_github_api() as github:
        theirs = github.add_comment(3, PlanMarker(fleet="fleet.yaml", sha256="f" * 64).render(), OCTOCAT)
        with GitHubAPI(github.repository, github.token, api_url=github.url) as api:
            StickyComments(api, 3).upsert("fleet.yaml", "the plan")

        assert github.comments_on(3)[0]["body"] == theirs["body"]
        assert [(c["user"]["login"], c["body"]) for c in github.comments_on(3)][1] == (BOT["login"], "the plan")
        assert [request.method for request in github.writes()] == ["POST"]
