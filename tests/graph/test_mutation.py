"""The mutations' inputs as clients write them, on both stores."""

from __future__ import annotations

from typing import Any

import pytest

from tests.graphql_client import GraphQLClient

UPSERT_CONTACT = """
mutation($input: ContactInput!) { upsertContact(input: $input) { contactId phoneNumber } }
"""
CONTACT = 'query { contact(contactId: "C1") { phoneNumber } }'


def _upsert_contact(api: GraphQLClient, **phones: str | None) -> dict[str, Any]:
    contact = {
        "contactId": "C1",
        "firstName": "Noah",
        "lastName": "Kim",
        "timeZone": "America/Chicago",
    }
    return api.execute(UPSERT_CONTACT, {"input": {**contact, **phones}})


@pytest.mark.parametrize(
    "phones",
    [
        pytest.param({"phone": "+1 555 0100"}, id="phone"),
        pytest.param({"phoneNumber": "+1 555 0100"}, id="phoneNumber"),
        pytest.param({"phoneNumber": "+1 555 0100", "phone": None}, id="phoneNumber-phone-null"),
        pytest.param({"phone": "+1 555 0100", "phoneNumber": "+1 555 0100"}, id="both-equal"),
    ],
)
def test_upsert_contact_takes_the_phone_number_under_either_name(
    empty_graphql: GraphQLClient, phones: dict[str, str | None]
) -> None:
    body = _upsert_contact(empty_graphql, **phones)
    assert "errors" not in body, body["errors"]
    assert body["data"]["upsertContact"] == {"contactId": "C1", "phoneNumber": "+1 555 0100"}
    # The other name updates the same field.
    other = "phone" if "phoneNumber" in phones else "phoneNumber"
    assert "errors" not in _upsert_contact(empty_graphql, **{other: "+1 555 0199"})
    assert empty_graphql.data(CONTACT)["contact"] == {"phoneNumber": "+1 555 0199"}


@pytest.mark.parametrize(
    ("phones", "message"),
    [
        pytest.param({}, "give the contact's phone number as phoneNumber", id="neither"),
        pytest.param(
            {"phone": None, "phoneNumber": None},
            "give the contact's phone number as phoneNumber",
            id="both-null",
        ),
        pytest.param(
            {"phone": "+1 555 0100", "phoneNumber": "+1 555 0101"},
            "phone and phoneNumber are one field under two names",
            id="both-different",
        ),
        pytest.param({"phoneNumber": "  "}, "phoneNumber must not be empty", id="blank"),
    ],
)
def test_upsert_contact_refuses_no_phone_number_or_two_different_ones(
    empty_graphql: GraphQLClient, phones: dict[str, str | None], message: str
) -> None:
    body = _upsert_contact(empty_graphql, **phones)
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert message in error["message"]
    assert empty_graphql.data(CONTACT)["contact"] is None
