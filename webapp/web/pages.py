"""The dashboard's pages: server-rendered shells that the page scripts fill from Socket.IO."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from webapp.web.access.guards import require_role

bp = Blueprint("pages", __name__)

PAGES = (
    ("capture", "Capture"),
    ("rig", "Rig"),
    ("setup", "Setup"),
    ("history", "History"),
    ("transducers", "Transducers"),
)

# capture.html is the per-capture analysis page; the live capture page is live.html.
TEMPLATES = {"capture": "live.html"}


def _render(page: str) -> Any:
    title = dict(PAGES).get(page) or page.capitalize()
    return render_template(TEMPLATES.get(page, f"{page}.html"), page=page, title=title, pages=PAGES)


@bp.get("/")
@require_role("viewer")
def index() -> Any:
    return _render("capture")


@bp.get("/capture")
@require_role("viewer")
def capture() -> Any:
    return _render("capture")


@bp.get("/rig")
@require_role("viewer")
def rig() -> Any:
    return _render("rig")


@bp.get("/setup")
@require_role("viewer")
def setup() -> Any:
    return _render("setup")


@bp.get("/history")
@require_role("viewer")
def history() -> Any:
    return _render("history")


@bp.get("/admin")
@require_role("admin")
def admin() -> Any:
    return _render("admin")
