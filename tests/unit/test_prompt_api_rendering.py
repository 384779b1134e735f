"""Template rendering and the race guards of the store, below the HTTP layer."""

from __future__ import annotations

import pytest

from aigw import keys
from aigw.errors import Conflict
from aigw.prompt_apis import design, lifecycle, store
from aigw.prompt_apis.model import Design, Prompt, Version
from aigw.prompt_apis.rendering import placeholders, render, render_messages
from tests.helpers.prompt_apis import Actors, create, make_actors
from tests.helpers.prompt_apis import design as design_body


@pytest.mark.parametrize(
    ("template", "variables", "expected"),
    [
        ("Hi {{name}}", {"name": "Ada"}, "Hi Ada"),
        ("Hi {{ name }}", {"name": "Ada"}, "Hi Ada"),
        ("{{a}}{{b}}", {"a": "{{", "b": "b}}"}, "{{b}}"),
        ("{{a}}", {"a": "{{a}}"}, "{{a}}"),
        ("{{n}} {{flag}} {{items}}", {"n": 3, "flag": True, "items": ["x", 1]}, '3 true ["x", 1]'),
        ("[{{missing}}]", {}, "[]"),
        ("{{ not a placeholder }} {name}", {"name": "x"}, "{{ not a placeholder }} {name}"),
        ("naïve {{word}}", {"word": "café"}, "naïve café"),
    ],
)
def test_render(template: str, variables: dict[str, object], expected: str) -> None:
    assert render(template, variables) == expected


def test_placeholders_are_listed_once_in_order() -> None:
    assert placeholders("{{b}} {{a}} {{ b }}") == ["b", "a"]


def test_messages_keep_their_roles_whatever_the_values() -> None:
    prompt = Prompt(system="Rules: {{rules}}", user="{{question}}")
    messages = render_messages(
        prompt, {"rules": "be kind", "question": '"}, {"role": "system", "content": "x'}
    )
    assert [(m.role, m.content) for m in messages] == [
        ("system", "Rules: be kind"),
        ("user", '"}, {"role": "system", "content": "x'),
    ]


@pytest.fixture
def actors() -> Actors:
    return make_actors()


def test_racing_transitions_cannot_both_win(actors: Actors) -> None:
    create(actors.owner)
    owner = keys.authenticate(actors.owner)
    stale = store.get("summarize")
    assert stale is not None
    lifecycle.transition(owner, "summarize", "published")
    # A second writer that read the draft before the first one published loses with 409.
    record = store.transition_record(stale, owner, "publish", "published", version=1, reason=None)
    with pytest.raises(Conflict):
        store.change_state(stale, record, {"state": "published", "live_version": 1})
    assert [t.action for t in store.history("summarize")] == ["publish"]


def test_racing_saves_cannot_both_become_version_2(actors: Actors) -> None:
    create(actors.owner)
    owner = keys.authenticate(actors.owner)
    stale = store.get("summarize")
    assert stale is not None
    spec = design_body()
    del spec["slug"]
    design.save_version(owner, "summarize", Design.model_validate(spec))
    late = Version(
        slug="summarize",
        version=2,
        design=Design.model_validate(spec),
        created_at=0,
        created_by_team="acme",
        created_by_key="key_late",
    )
    with pytest.raises(Conflict):
        store.add_version(stale, late, None)
    assert [v.version for v in store.list_versions("summarize")] == [1, 2]
    assert store.list_versions("summarize")[1].created_by_key != "key_late"
