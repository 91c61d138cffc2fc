"""One error tree, one status table: every `MezzoError` class has its status in the server's
table, the tree in `mezzo.errors`' docstring is the classes there, the SDK turns each status
back into the category the server's table gives it, and the store raises no HTTP error."""

from __future__ import annotations

import re

import pytest

from mezzo import errors
from mezzo.client.http import _BY_STATUS
from mezzo.server.status import STATUS, close_code, status_for
from mezzo.store.base import StoreUnavailable
from mezzo.store.factory import store_for_url


def error_classes() -> list[type[errors.MezzoError]]:
    return [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.MezzoError)
    ]


def test_the_docstring_draws_every_error_class_once() -> None:
    drawn = re.findall(r"^\s*(?:[│├└─ ]+)?([A-Z][A-Za-z]+)\s", errors.__doc__ or "", re.M)
    tree = [name for name in drawn if hasattr(errors, name)]
    assert sorted(tree) == sorted(cls.__name__ for cls in error_classes())


def test_every_error_has_a_status_and_domain_errors_inherit_their_categorys() -> None:
    for cls in error_classes():
        assert status_for(cls("x")) is not None, cls
    assert status_for(errors.WorkspaceNotFound("x")) == 404
    assert status_for(errors.RunConflict("x")) == 409
    assert status_for(errors.InvalidCursor("x")) == 400
    assert status_for(errors.BudgetExhausted("x")) == 429
    assert status_for(StoreUnavailable("down")) == 503
    assert status_for(RuntimeError("bug")) is None
    assert close_code(errors.RunNotFound("x")) == 4404


def test_status_reads_the_table_in_process_and_the_answer_over_http() -> None:
    assert errors.WorkspaceNotFound("x").status == 404
    assert errors.ConfigurationError("x").status == 500
    assert errors.BadRequest("x", status=422).status == 422


def test_the_sdk_raises_the_category_the_server_answers_with() -> None:
    for status, category in _BY_STATUS.items():
        if status == 422:  # FastAPI's validation errors: the SDK calls them BadRequest
            assert category is errors.BadRequest
            continue
        assert status_for(category("x")) == status, category
    mapped = {STATUS[cls] for cls in STATUS if issubclass(cls, errors.MezzoError)}
    assert mapped - {500} <= set(_BY_STATUS)


def test_the_store_raises_no_http_error() -> None:
    with pytest.raises(errors.ConfigurationError) as refused:
        store_for_url("bogus://x")
    assert not isinstance(refused.value, errors.BadRequest)
