"""The Jinja environment of outgoing mail: its remembered ``wordwrap`` and plain globals
behave as Jinja's own; its ``filesizeformat`` writes small sizes in bytes, not "Bytes"."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
from helpdeskd.domain import Category
from helpdeskd.outbound import environment
from helpdeskd.outbound.environment import make_environment

SCRIPT = "<script>alert('x')</script> & <b>bold</b>"


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ("change the category: Order, Payment, Technical, General", (52,)),
        ("a " * 200, (20,)),
        ("averyveryverylongwordthatcannotbreak and more", (10, False)),
        ("well-known hyphen-ated words wrap", (12, True, "\n  ", False)),
        (SCRIPT, (8,)),
    ],
)
def test_wordwrap_wraps_as_jinjas_own(text: str, args: tuple[object, ...]) -> None:
    """The packaged environment remembers ``wordwrap`` results; they are Jinja's."""
    source = "{{ text | wordwrap(" + ", ".join(repr(a) for a in args) + ") }}"
    ours = make_environment().from_string(source).render(text=text)
    assert ours == jinja2.Environment().from_string(source).render(text=text)
    assert ours == make_environment().from_string(source).render(text=text)  # remembered


def test_globals_reach_included_operator_templates(tmp_path: Path) -> None:
    """Globals live in a plain dict per template: they reach includes, and a template's
    own globals stay its own."""
    (tmp_path / "_part.txt").write_text("{{ categories | join('/') }} {{ range(3) | list }}")
    env = make_environment(tmp_path)
    outer = env.from_string('{% include "_part.txt" %}', globals={"mine": 1})
    assert outer.render() == "/".join(c.value for c in Category) + " [0, 1, 2]"
    assert "mine" not in env.get_template("_part.txt").globals


def test_wordwrap_of_a_value_that_is_not_text_fails_as_jinjas_own(tmp_path: Path) -> None:
    """An operator template wrapping None must fail the check, not mail the word "None"."""
    source = "{{ v|wordwrap(20) }}"
    with pytest.raises(AttributeError):
        jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(source).render(v=None)
    with pytest.raises(AttributeError):
        make_environment(tmp_path).from_string(source).render(v=None)


def test_a_safe_wrapstring_in_html_is_not_answered_from_a_text_templates_result(tmp_path: Path) -> None:
    """``Markup("<br>")`` equals ``"<br>"``; the two wrap differently and are not mixed up."""
    (tmp_path / "a.txt").write_text('{{ t|wordwrap(8, wrapstring="<br>") }}')
    (tmp_path / "b.html").write_text('{{ t|wordwrap(8, wrapstring="<br>"|safe) }}')
    env = make_environment(tmp_path)
    env.get_template("a.txt").render(t="Tom & Jerry sing")
    assert env.get_template("b.html").render(t="Tom & Jerry sing") == "Tom &amp;<br>Jerry<br>sing"
    assert env.get_template("a.txt").render(t="Tom & Jerry sing") == "Tom &<br>Jerry<br>sing"


def test_long_text_is_wrapped_but_not_remembered() -> None:
    env = make_environment()
    long_text = "word " * (environment.WORDWRAP_REMEMBERED_MAX // 5 + 10)
    before = environment._wordwrap.cache_info().currsize
    out = env.from_string("{{ t|wordwrap(30) }}").render(t=long_text)
    assert out == jinja2.Environment().from_string("{{ t|wordwrap(30) }}").render(t=long_text)
    assert environment._wordwrap.cache_info().currsize == before


@pytest.mark.parametrize(("size", "english", "german"), [
    (0, "0 bytes", "0 Bytes"), (1, "1 byte", "1 Byte"), (13, "13 bytes", "13 Bytes"),
    (999, "999 bytes", "999 Bytes"), (1000, "1.0 kB", "1,0 kB"), (2_500_000, "2.5 MB", "2,5 MB"),
])
def test_a_small_file_s_size_is_in_bytes_written_small_unless_a_translation_says(
    size: int, english: str, german: str
) -> None:
    """Jinja writes "13 Bytes"; English writes "13 bytes"."""
    render = make_environment().from_string(
        "{{ n | filesizeformat }}|{{ n | filesizeformat(point=',', byte='Byte', bytes='Bytes') }}").render
    assert render(n=size).split("|") == [english, german]
