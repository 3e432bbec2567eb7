"""Where the quoted history of an HTML reply starts: the quote container the mail
program put there (Gmail's ``gmail_quote``, Outlook's ``divRplyFwdMsg``/``appendonsend``,
Apple's ``<blockquote type="cite">``, Thunderbird's ``moz-cite-prefix``, Yahoo's
``yahoo_quoted``). Used by :mod:`helpdeskd.mail.strip`."""

from __future__ import annotations

from html.parser import HTMLParser

from helpdeskd.mail.html import feed_quietly, offset_at

__all__ = ["find_quote"]


class _QuoteFinder(HTMLParser):
    """Finds where the first quote container of a mail program starts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: tuple[str, tuple[int, int]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.found is None and (marker := _container(tag, dict(attrs))):
            self.found = (marker, self.getpos())


def _container(tag: str, attrs: dict[str, str | None]) -> str | None:
    classes, ident = (attrs.get("class") or "").split(), attrs.get("id") or ""
    if any(c.startswith("gmail_quote") for c in classes):
        return "gmail_quote"
    if ident in ("divRplyFwdMsg", "appendonsend"):
        return ident
    if tag == "blockquote" and (attrs.get("type") or "").lower() == "cite":
        return "blockquote_cite"
    if "moz-cite-prefix" in classes:
        return "moz-cite-prefix"
    if "yahoo_quoted" in classes or ident.startswith("yahoo_quoted"):
        return "yahoo_quoted"
    return None


def find_quote(html: str) -> tuple[str, int] | None:
    """The name and offset of the first quote container in ``html``, or None."""
    finder = _QuoteFinder()
    feed_quietly(finder, html)
    if finder.found is None:
        return None
    marker, (lineno, col) = finder.found
    return marker, offset_at(html, lineno, col)
