"""Yank and unyank from a project's page: the form beside each version, and the POST it sends."""

from __future__ import annotations

from urllib.parse import quote

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from twisted.web.template import Tag, tags

from ...private import NoSuchRelease
from ..components import Components
from .page import form_fields, html_error, logged_in, one, see_other

# As long as a reason pip and uv print in one line can usefully be.
MAX_REASON = 200


def yank_form(version: str, yanked: bool, csrf: str) -> Tag:
    """Yank (with a reason) or unyank a version: a POST to the page, with the login's CSRF token."""
    action = "unyank" if yanked else "yank"
    form = tags.form(
        tags.input(type="hidden", name="csrf", value=csrf),
        tags.input(type="hidden", name="action", value=action),
        tags.input(type="hidden", name="version", value=version),
        method="post", action="./", class_=f"manage {action}",
    )
    if action == "yank":
        field_id = f"reason-{version}"
        form(tags.label("Reason", for_=field_id, class_="visually-hidden"),
             tags.input(type="text", name="reason", id=field_id, maxlength=str(MAX_REASON),
                        placeholder="Why? (pip shows it)"),
             " ", tags.button(f"Yank {version}", type="submit", class_="danger"))
    else:
        form(tags.button(f"Unyank {version}", type="submit", class_="secondary"))
    return form


async def change_release(components: Components, request: IRequest, name: str) -> IResource | bytes:
    """Yank or unyank a version of private project ``name``, for an owner or an admin; then
    back to the version on the page (303)."""
    team = components.team
    account = logged_in(request)
    if team is None or account is None:
        return html_error(403, "log in to change a project")
    try:
        fields = form_fields(request)
    except ValueError as e:
        return html_error(400, str(e))
    if not team.tokens.csrf_ok(account, one(fields, "csrf") or None):
        return html_error(403, "missing or wrong csrf token: reload the page and try again")
    if name not in team.store.names():
        return html_error(403, f"only private projects are yanked here, and {name!r} is not one")
    if not team.rules.may_manage(account, name):
        return html_error(403, f"user {account.name!r} may not yank releases of project {name!r}")
    action, version, reason = one(fields, "action"), one(fields, "version"), one(fields, "reason")
    if action not in ("yank", "unyank") or not version:
        return html_error(400, "the form needs action=yank or unyank, and a version")
    yanked = action == "yank"
    reason = reason[:MAX_REASON] or None
    try:
        changed = await components.to_thread(team.store.set_yanked, name, version, yanked, reason)
    except NoSuchRelease as e:
        return html_error(404, str(e))
    await team.audit.record(action, str(account), project=name, version=version,
                            reason=reason if yanked else None, files=len(changed), via="project page")
    return see_other(request, f"./#v{quote(version)}")
