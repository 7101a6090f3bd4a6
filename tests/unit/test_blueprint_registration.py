"""A blueprint registered on a second app keeps its routes' methods and options (Chalice consumes the
options it stores when it registers them: ``chalice package`` run in-process by infra, or a test's own
app, would otherwise leave every route of the blueprint a GET for the next app)."""

from __future__ import annotations

from chalice.app import Chalice

from chalicelib.api.http import Blueprint


def _methods(app: Chalice) -> dict[str, list[str]]:
    return {path: sorted(entries) for path, entries in app.routes.items()}


def test_a_blueprint_registered_on_two_apps_gives_both_the_methods_and_content_types_declared() -> None:
    bp = Blueprint(__name__)

    @bp.route("/things", methods=["GET"])
    def list_things() -> dict[str, str]:
        return {}

    @bp.route("/things", methods=["POST"], content_types=["text/csv"])
    def add_thing() -> dict[str, str]:
        return {}

    first, second = Chalice(app_name="first"), Chalice(app_name="second")
    first.register_blueprint(bp)
    second.register_blueprint(bp)  # stock Chalice: ValueError (duplicate GET on /things)
    assert _methods(first) == _methods(second) == {"/things": ["GET", "POST"]}
    assert second.routes["/things"]["POST"].content_types == ["text/csv"]
