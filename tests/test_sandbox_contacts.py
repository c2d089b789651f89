"""The sandbox's contacts databases over real HTTP: messaging-api.txt → "Databases"
(``/api/rest/contacts``, ``/api/rest/groups``; ``sandbox.contacts``) and
mail-api-4-contacts.txt (``/mail/api/contacts/upload-csv`` and ``…/list``;
``sandbox.mail_contacts``), with their stats and faults."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from jobs.settings import Settings
from tests.conftest import SANDBOX_AUTH

CONTACTS = "/api/rest/contacts"
GROUPS = "/api/rest/groups"
UPLOAD = "contacts/upload-csv"  # relative to the mail API's base URL, as the doc writes them
LIST = "contacts/list"
FAULTS = "/_sandbox/faults"

SETTINGS = Settings()
MAIL_KEYS = {
    "PublicKey": SETTINGS.mail_public_key.get_secret_value(),
    "SecretKey": SETTINGS.mail_secret_key.get_secret_value(),
}
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")
MAIL_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000000Z")
LIST_NAME = "My contact list"
HEADER = "first_name,last_name,email,alt_email,country,state,city,address_line1,address_line2,"
HEADER += "state_province_region,postal_code"


def refusal(description: str, code: int = 422) -> dict[str, Any]:
    return {"error": {"code": code, "description": description}}


NOT_FOUND = refusal("Resource not found", 404)


def contact(**changes: Any) -> dict[str, Any]:
    """The doc's POST example (a value of ``...`` removes the key)."""
    base: dict[str, Any] = {
        "email": "new.contact@example.com",
        "phone": "3466666666",
        "countryIso": "ES",
        "groupsNames": [LIST_NAME],
        "customFields": [{"key": "company", "value": "ACME inc."}],
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not ...}


async def stats(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/_sandbox/stats")
    assert response.status_code == 200
    found: dict[str, Any] = response.json()
    return found


async def configure(client: httpx.AsyncClient, config: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(FAULTS, json=config)
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()
    return state


async def new_group(client: httpx.AsyncClient, name: str = LIST_NAME) -> int:
    response = await client.post(GROUPS, json={"name": name})
    assert response.status_code == 201, response.text
    group: int = response.json()["data"]["id"]
    return group


async def list_group(client: httpx.AsyncClient) -> int:
    """The id of the doc's group (ids go on across resets: not 1 but the first's)."""
    groups = (await client.get(GROUPS)).json()["data"]
    found: int = next(group["id"] for group in groups if group["name"] == LIST_NAME)
    return found


async def create(client: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    response = await client.post(CONTACTS, json=contact(**changes))
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


@pytest.fixture
async def book(sandbox: httpx.AsyncClient) -> httpx.AsyncClient:
    """The sandbox with the doc's group, "My contact list"."""
    await new_group(sandbox)
    return sandbox


@pytest.fixture
async def mail(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the mail API as BULKSEND_MAIL_API_URL would point one at it."""
    base = f"{sandbox_url}/mail/api/"
    async with httpx.AsyncClient(base_url=base, headers=MAIL_KEYS, timeout=10) as client:
        yield client


def csv_file(text: str, name: str = "contacts.csv") -> dict[str, tuple[str, bytes, str]]:
    return {"file": (name, text.encode(), "text/csv")}


async def upload(
    client: httpx.AsyncClient, text: str, contact_type_id: str = "3", name: str = "contacts.csv"
) -> httpx.Response:
    return await client.post(
        UPLOAD, data={"contact_type_id": contact_type_id}, files=csv_file(text, name)
    )


# --- groups -------------------------------------------------------------------------


async def test_group_create_show_update_delete(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(GROUPS, json={"name": "  My new contact list  "})
    assert response.status_code == 201
    group = response.json()["data"]
    assert group == {"id": group["id"], "name": "My new contact list"}
    path = f"{GROUPS}/{group['id']}"
    assert (await sandbox.get(path)).json() == {"data": group}

    response = await sandbox.put(path, json={"name": "Renamed"})
    assert response.status_code == 200
    assert response.json() == {"data": {"id": group["id"], "name": "Renamed"}}
    # Its own name again is not "taken".
    assert (await sandbox.put(path, json={"name": "renamed"})).status_code == 200

    response = await sandbox.delete(path)
    assert (response.status_code, response.content) == (204, b"")
    for method in ("GET", "PUT", "DELETE"):
        response = await sandbox.request(method, path, json={"name": "x"})
        assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert (await stats(sandbox))["contacts"]["groups"] == 0


@pytest.mark.parametrize(
    ("body", "description"),
    [
        ({}, "The name field is required."),
        ({"name": None}, "The name field is required."),
        ({"name": "   "}, "The name field is required."),
        ({"name": 7}, "The name must be a string."),
        ({"name": "x" * 256}, "The name must not be greater than 255 characters."),
    ],
)
async def test_group_name_is_checked(
    sandbox: httpx.AsyncClient, body: dict[str, Any], description: str
) -> None:
    response = await sandbox.post(GROUPS, json=body)
    assert (response.status_code, response.json()) == (422, refusal(description))
    group = await new_group(sandbox)
    response = await sandbox.put(f"{GROUPS}/{group}", json=body)
    assert (response.status_code, response.json()) == (422, refusal(description))


async def test_group_names_are_unique(sandbox: httpx.AsyncClient) -> None:
    first = await new_group(sandbox, "VIP")
    response = await sandbox.post(GROUPS, json={"name": "vip "})
    assert (response.status_code, response.json()) == (
        422,
        refusal("The name has already been taken."),
    )
    other = await new_group(sandbox, "Others")
    response = await sandbox.put(f"{GROUPS}/{other}", json={"name": "VIP"})
    assert response.status_code == 422
    assert first != other
    counted = (await stats(sandbox))["contacts"]
    assert (counted["groups"], counted["groups_created_twice"]) == (2, 0)


async def test_groups_list_pages(sandbox_url: str, sandbox: httpx.AsyncClient) -> None:
    ids = [await new_group(sandbox, f"List {i}") for i in range(5)]
    body = (await sandbox.get(GROUPS)).json()
    assert body["data"] == [{"id": id_, "name": f"List {i}"} for i, id_ in enumerate(ids)]
    assert body["meta"] == {
        "pagination": {
            "total": 5,
            "count": 5,
            "per_page": 100,
            "current_page": 1,
            "total_pages": 1,
            "links": {},
        }
    }
    first = (await sandbox.get(GROUPS, params={"limit": 2})).json()
    assert [group["id"] for group in first["data"]] == ids[:2]
    assert first["meta"]["pagination"] == {
        "total": 5,
        "count": 2,
        "per_page": 2,
        "current_page": 1,
        "total_pages": 3,
        "links": {"next": f"{sandbox_url}{GROUPS}?limit=2&page=2"},
    }
    last = (await sandbox.get(first["meta"]["pagination"]["links"]["next"] + "0")).json()
    assert last["data"] == []  # page 20: past the end
    second = (await sandbox.get(GROUPS, params={"limit": 2, "page": 3})).json()
    assert [group["id"] for group in second["data"]] == ids[4:]
    assert second["meta"]["pagination"]["links"] == {
        "previous": f"{sandbox_url}{GROUPS}?limit=2&page=2"
    }


# --- contacts: create ---------------------------------------------------------------


async def test_create_answers_the_docs_body(sandbox_url: str, book: httpx.AsyncClient) -> None:
    response = await book.post(CONTACTS, json=contact())
    assert response.status_code == 201
    data = response.json()["data"]
    assert data == {
        "id": data["id"],
        "email": "new.contact@example.com",
        "phone": "3466666666",
        "countryIso": "ES",
        "landline": None,
        "name": None,
        "surname": None,
        "createdAt": data["createdAt"],
        "updatedAt": data["createdAt"],
        "links": {"self": f"{sandbox_url}{CONTACTS}/{data['id']}"},
    }
    assert TIME.fullmatch(data["createdAt"])
    shown = await book.get(data["links"]["self"], params={"include": "customFields,groups"})
    assert shown.json()["data"]["customFields"] == {
        "data": [{"key": "company", "type": "string", "value": "ACME inc."}]
    }
    assert shown.json()["data"]["groups"]["data"][0]["name"] == LIST_NAME
    counted = (await stats(book))["contacts"]
    assert counted == {
        "created": 1,
        "stored": 1,
        "created_twice": 0,
        "duplicate_refused": 0,
        "duplicates_allowed": 0,
        "groups": 1,
        "groups_created_twice": 0,
    }


@pytest.mark.parametrize(
    ("changes", "description"),
    [
        ({"email": ..., "phone": ...}, "The email field is required."),
        ({"email": "  ", "phone": None, "landline": ""}, "The email field is required."),
        ({"email": 5}, "The email must be a string."),
        ({"email": "not-an-address"}, "The email must be a valid email address."),
        (
            {"email": "a@" + "b" * 250 + ".com"},
            "The email must not be greater than 255 characters.",
        ),
        ({"phone": "34-666-666"}, "The phone format is invalid."),
        ({"phone": "123"}, "The phone format is invalid."),
        ({"phone": 34666666666}, "The phone must be a string."),
        ({"landline": "9002x2222"}, "The landline format is invalid."),
        ({"countryIso": ...}, "The country iso field is required."),
        (
            {"phone": ..., "landline": "900222222", "countryIso": ""},
            "The country iso field is required.",
        ),
        ({"countryIso": "ESP"}, "The country iso must be 2 characters."),
        ({"countryIso": "XX"}, "The selected country iso is invalid."),
        ({"groupsNames": ...}, "The groups ids field is required."),
        ({"groupsNames": [], "groupsIds": []}, "The groups ids field is required."),
        ({"groupsIds": 1}, "The groups ids must be an array."),
        ({"groupsNames": "My contact list"}, "The groups names must be an array."),
        ({"groupsIds": [999]}, "The selected groups ids is invalid (no group 999)."),
        (
            {"groupsNames": ["Nope"]},
            'The selected groups names is invalid (no group named "Nope").',
        ),
        ({"name": 5}, "The name must be a string."),
        ({"surname": "x" * 256}, "The surname must not be greater than 255 characters."),
        ({"customFields": {"key": "a"}}, "The custom fields must be an array."),
        ({"customFields": ["a"]}, "The custom fields.0 must be an object."),
        ({"customFields": [{"value": "v"}]}, "The custom fields.0.key field is required."),
        (
            {"customFields": [{"key": "a"}, {"key": "a"}]},
            "The custom fields.1.key field has a duplicate value.",
        ),
        (
            {"customFields": [{"key": "a", "type": "integer"}]},
            "The selected custom fields.0.type is invalid.",
        ),
        (
            {"customFields": [{"key": "a", "type": "date", "value": "13/03/2018"}]},
            "The custom fields.0.value must be a date in ISO 8601 format.",
        ),
        (
            {"customFields": [{"key": "a", "type": "decimal", "value": "12,5"}]},
            "The custom fields.0.value must be a number.",
        ),
        (
            {"customFields": [{"key": "a", "value": 12}]},
            "The custom fields.0.value must be a string.",
        ),
        ({"externalId": 5}, "The external id must be a string."),
    ],
)
async def test_create_is_validated_as_documented(
    book: httpx.AsyncClient, changes: dict[str, Any], description: str
) -> None:
    response = await book.post(CONTACTS, json=contact(**changes))
    assert (response.status_code, response.json()) == (422, refusal(description))
    counted = await stats(book)
    assert (counted["contacts"]["created"], counted["contacts"]["stored"]) == (0, 0)
    assert counted["channels"]["contacts"]["rejected"] == 1


async def test_the_first_problem_in_table_order_is_named(book: httpx.AsyncClient) -> None:
    # No identity and a bad name: email comes first in the doc's table.
    body = {"name": 5, "groupsIds": [999]}
    assert (await book.post(CONTACTS, json=body)).json() == refusal("The email field is required.")
    body = {"email": "a@example.com", "groupsIds": [999], "name": 5}
    assert (
        (await book.post(CONTACTS, json=body))
        .json()["error"]["description"]
        .startswith("The selected groups ids")
    )


async def test_create_keeps_values_as_documented(book: httpx.AsyncClient) -> None:
    other = await new_group(book, "Second")
    data = await create(
        book,
        email=" Ann@Example.COM ",
        phone="+34 666 555 444",
        landline="0034900222222",
        countryIso="es",
        name=" Ann ",
        surname="Smith",
        groupsIds=[other, str(other)],
        groupsNames=["my CONTACT list"],
        externalId="EXT1",
        customFields=[
            {"key": "born", "type": "date", "value": "1990-05-01"},
            {"key": "seen", "type": "date", "value": "2024-01-02T03:04:05Z"},
            {"key": "score", "type": "decimal", "value": "12.5"},
            {"key": "level", "type": "decimal", "value": 3},
            {"key": "empty"},
        ],
    )
    assert {key: data[key] for key in ("email", "phone", "landline", "countryIso", "name")} == {
        "email": "Ann@example.com",  # the domain lower-cased, not the local part
        "phone": "34666555444",
        "landline": "0034900222222",
        "countryIso": "ES",
        "name": "Ann",
    }
    shown = (await book.get(f"{CONTACTS}/{data['id']}?include=groups,customFields,nope")).json()
    assert "links" not in shown["data"]
    assert [group["name"] for group in shown["data"]["groups"]["data"]] == ["Second", LIST_NAME]
    assert shown["data"]["customFields"]["data"] == [
        {"key": "born", "type": "date", "value": "1990-05-01"},
        {"key": "seen", "type": "date", "value": "2024-01-02T03:04:05Z"},
        {"key": "score", "type": "decimal", "value": "12.5"},
        {"key": "level", "type": "decimal", "value": 3},
        {"key": "empty", "type": "string", "value": None},
    ]
    # A landline or a phone alone is an identity; an email alone needs no country.
    assert (await create(book, email=..., phone=..., landline="900222222"))["email"] is None
    alone = await create(book, email="solo@example.com", phone=..., countryIso=...)
    assert alone["countryIso"] is None


async def test_bad_json_is_125(book: httpx.AsyncClient) -> None:
    for path in (CONTACTS, GROUPS):
        response = await book.post(path, content=b"{nope", headers={"content-type": "json"})
        assert (response.status_code, response.json()) == (400, refusal("Invalid JSON", 125))
        response = await book.post(path, json=["a list"])
        assert response.status_code == 400


async def test_credentials_are_checked(sandbox_url: str, book: httpx.AsyncClient) -> None:
    for path in (CONTACTS, GROUPS, f"{CONTACTS}/1"):
        response = httpx.get(f"{sandbox_url}{path}", auth=("sandbox", "wrong"))
        assert response.status_code == 401
        assert response.json() == refusal("Username or password unknown", 103)
    counted = (await stats(book))["channels"]
    assert (counted["contacts"]["requests"], counted["contacts"]["rejected"]) == (2, 2)


# --- duplicates -----------------------------------------------------------------------


async def test_a_taken_email_or_phone_is_refused(book: httpx.AsyncClient) -> None:
    await create(book, email="ann@example.com", phone="34666555444")
    response = await book.post(CONTACTS, json=contact(email="ANN@example.com", phone=...))
    assert response.json() == refusal("The email has already been taken.")
    same_phone = contact(email="other@example.com", phone="+34 666 555 444")
    assert (await book.post(CONTACTS, json=same_phone)).json() == refusal(
        "The phone has already been taken."
    )
    counted = (await stats(book))["contacts"]
    assert (counted["created"], counted["duplicate_refused"], counted["created_twice"]) == (1, 2, 0)
    # A contact's own email is not taken from itself; another's is.
    bob = await create(book, email="bob@example.com", phone=...)
    response = await book.put(f"{CONTACTS}/{bob['id']}", json=contact(email="ann@example.com"))
    assert response.json() == refusal("The email has already been taken.")
    own = contact(email="bob@example.com", phone=...)
    assert (await book.put(f"{CONTACTS}/{bob['id']}", json=own)).status_code == 200


async def test_created_twice_counts_what_slipped_through(book: httpx.AsyncClient) -> None:
    await configure(book, {"allow_duplicates": True})
    await create(book, email="ann@example.com", phone=...)
    await create(book, email="Ann@Example.com", phone=...)  # let through
    await create(book, email="bob@example.com", phone=...)
    counted = (await stats(book))["contacts"]
    assert (counted["created"], counted["created_twice"], counted["duplicates_allowed"]) == (
        3,
        1,
        1,
    )
    assert (await book.get(CONTACTS, params={"email": "ann@example.com"})).json()["meta"][
        "pagination"
    ]["total"] == 2
    # The fault off again: refused, and so not created twice.
    await configure(book, {})
    assert (await book.post(CONTACTS, json=contact(email="bob@example.com"))).status_code == 422
    # Deleted and created again: the same person was created twice.
    bob = (await book.get(CONTACTS, params={"email": "bob@example.com"})).json()["data"][0]
    assert (await book.delete(f"{CONTACTS}/{bob['id']}")).status_code == 204
    await create(book, email="bob@example.com", phone=...)
    assert (await stats(book))["contacts"]["created_twice"] == 2


async def test_duplicate_group_names_under_the_fault(book: httpx.AsyncClient) -> None:
    await configure(book, {"allow_duplicates": True, "channels": ["groups"]})
    await new_group(book, LIST_NAME.upper())
    assert (await stats(book))["contacts"]["groups_created_twice"] == 1
    # Only groups: contacts still refuse a taken email.
    await create(book, email="ann@example.com")
    assert (await book.post(CONTACTS, json=contact(email="ann@example.com"))).status_code == 422
    # groupsNames picks the oldest group of that name.
    oldest = await list_group(book)
    data = await create(book, email="bob@example.com", phone=...)
    shown = (await book.get(f"{CONTACTS}/{data['id']}", params={"include": "groups"})).json()
    assert shown["data"]["groups"]["data"] == [{"id": oldest, "name": LIST_NAME}]


# --- contacts: list, show, update, delete ---------------------------------------------


async def test_list_filters(book: httpx.AsyncClient) -> None:
    ann = await create(book, email="Ann@example.com", phone="34666555444", externalId="EXT1")
    bob = await create(book, email="bob@example.org", phone=..., countryIso="FR")
    cid = await create(book, email=..., phone=..., landline="900222222", externalId="EXT3")

    async def found(**params: str) -> list[int]:
        body = (await book.get(CONTACTS, params=params)).json()
        assert body["meta"]["pagination"]["total"] == len(body["data"])
        return [item["id"] for item in body["data"]]

    assert await found() == [ann["id"], bob["id"], cid["id"]]
    assert await found(email="ann@EXAMPLE.com") == [ann["id"]]
    assert await found(phone="+34 666 555 444") == [ann["id"]]
    assert await found(landline="900222222") == [cid["id"]]
    assert await found(countryIso="es") == [ann["id"], cid["id"]]
    assert await found(countryIso="FR") == [bob["id"]]
    assert await found(externalId="EXT3") == [cid["id"]]
    assert await found(externalId="EXT3", countryIso="FR") == []
    assert await found(email="nobody@example.com") == []
    assert await found(phone="not a phone") == []


async def test_list_pages_and_includes(sandbox_url: str, book: httpx.AsyncClient) -> None:
    ids = [(await create(book, email=f"p{i}@example.com", phone=...))["id"] for i in range(5)]
    body = (await book.get(CONTACTS, params={"include": "customFields,groups", "limit": 2})).json()
    assert [item["id"] for item in body["data"]] == ids[:2]
    group = await list_group(book)
    assert body["data"][0]["groups"] == {"data": [{"id": group, "name": LIST_NAME}]}
    assert body["data"][0]["customFields"]["data"][0]["key"] == "company"
    pagination = body["meta"]["pagination"]
    assert pagination == {
        "total": 5,
        "count": 2,
        "per_page": 2,
        "current_page": 1,
        "total_pages": 3,
        # As in the doc: the request's URL with the page.
        "links": {"next": f"{sandbox_url}{CONTACTS}?include=customFields%2Cgroups&limit=2&page=2"},
    }
    second = (await book.get(pagination["links"]["next"])).json()
    assert [item["id"] for item in second["data"]] == ids[2:4]
    assert set(second["meta"]["pagination"]["links"]) == {"previous", "next"}
    plain = (await book.get(CONTACTS, params={"limit": 5000})).json()
    assert "groups" not in plain["data"][0]
    assert plain["meta"]["pagination"]["per_page"] == 1000  # "Maximum: 1000"
    # Past the last page: nothing, and the right counts.
    beyond = (await book.get(CONTACTS, params={"page": 9})).json()
    assert beyond["data"] == []
    assert beyond["meta"]["pagination"]["count"] == 0
    # After a deletion the pages skip it.
    await book.delete(f"{CONTACTS}/{ids[1]}")
    body = (await book.get(CONTACTS, params={"limit": 2, "page": 2})).json()
    assert [item["id"] for item in body["data"]] == ids[3:5]


@pytest.mark.parametrize(
    ("limit", "description"),
    [("abc", "The limit must be an integer."), ("0", "The limit must be at least 1.")],
)
async def test_a_bad_limit_is_refused(
    sandbox: httpx.AsyncClient, limit: str, description: str
) -> None:
    for path in (CONTACTS, GROUPS):
        response = await sandbox.get(path, params={"limit": limit})
        assert (response.status_code, response.json()) == (422, refusal(description))


async def test_update_and_delete(sandbox_url: str, book: httpx.AsyncClient) -> None:
    created = await create(book, email="ann@example.com", name="Ann", landline="900222222")
    other = await new_group(book, "Second")
    path = f"{CONTACTS}/{created['id']}"
    changes = {
        "email": "ann@example.com",
        "surname": "Smith",
        "landline": None,  # cleared
        "groupsIds": [other],
        "customFields": [{"key": "company", "value": "Initech"}, {"key": "tier", "value": "1"}],
    }
    response = await book.put(path, json=changes)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["links"] == {"self": f"{sandbox_url}{path}"}
    assert (data["name"], data["surname"], data["landline"], data["phone"]) == (
        "Ann",  # not given: kept
        "Smith",
        None,
        "3466666666",
    )
    shown = (await book.get(path, params={"include": "groups,customFields"})).json()["data"]
    first = await list_group(book)
    assert [group["id"] for group in shown["groups"]["data"]] == [first, other]  # added
    assert shown["customFields"]["data"] == [
        {"key": "company", "type": "string", "value": "Initech"},
        {"key": "tier", "type": "string", "value": "1"},
    ]
    # PUT is checked as POST is: its identity and groups again.
    response = await book.put(path, json={"name": "Ann"})
    assert response.json() == refusal("The email field is required.")
    response = await book.put(path, json={"email": "ann@example.com"})
    assert response.json() == refusal("The groups ids field is required.")
    # A deleted group leaves its contacts.
    await book.delete(f"{GROUPS}/{other}")
    shown = (await book.get(path, params={"include": "groups"})).json()["data"]
    assert shown["groups"]["data"] == [{"id": first, "name": LIST_NAME}]

    response = await book.delete(path)
    assert (response.status_code, response.content) == (204, b"")
    for method in ("GET", "PUT", "DELETE"):
        response = await book.request(method, path, json=contact())
        assert (response.status_code, response.json()) == (404, NOT_FOUND)
    for bad in ("abc", "0", "-1", "1.5"):
        response = await book.get(f"{CONTACTS}/{bad}")
        assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert (await stats(book))["contacts"]["stored"] == 0


async def test_wrong_methods_are_405(book: httpx.AsyncClient) -> None:
    for path, allow in (
        (CONTACTS, "GET, POST"),
        (f"{CONTACTS}/1", "GET, PUT, DELETE"),
        (GROUPS, "GET, POST"),
        (f"{GROUPS}/1", "GET, PUT, DELETE"),
    ):
        response = await book.patch(path, json={})
        assert response.status_code == 405
        assert response.headers["allow"] == allow
        assert response.json() == refusal("Method not allowed", 405)


async def test_stats_list_contacts_once_used_and_reset_clears(
    sandbox_url: str, book: httpx.AsyncClient
) -> None:
    counted = await stats(book)
    assert set(counted["channels"]) == {
        "sms",
        "email",
        "voice",
        "voice-audio",
        "landing",
        "whatsapp",
        "groups",
    }
    first = await create(book)
    counted = await stats(book)
    assert counted["channels"]["contacts"]["requests"] == 1
    assert counted["contacts"]["stored"] == 1
    assert counted["mail"] == {"uploads": 0, "rows": 0, "rows_twice": 0, "contacts": 0}

    assert (await book.post("/_sandbox/reset")).status_code == 200
    counted = await stats(book)
    assert "contacts" not in counted["channels"]
    assert counted["contacts"]["stored"] == counted["contacts"]["groups"] == 0
    assert (await book.get(CONTACTS)).json()["data"] == []
    assert (await book.get(GROUPS)).json()["data"] == []
    group = await new_group(book)
    # Ids are never reused, even across a reset.
    assert (await create(book, groupsIds=[group], groupsNames=...))["id"] > first["id"]


# --- faults ---------------------------------------------------------------------------


async def test_an_error_fault_answers_the_documented_body(book: httpx.AsyncClient) -> None:
    await configure(book, {"channels": ["contacts"], "error": {"code": 422}})
    response = await book.post(CONTACTS, json=contact())
    assert (response.status_code, response.json()) == (422, refusal("Input validation error"))
    await configure(book, {"channels": ["contacts"], "error": {"code": 101}})
    response = await book.get(CONTACTS)
    assert (response.status_code, response.json()) == (500, refusal("Internal Database error", 101))
    # Another channel's name leaves contacts alone; groups is its own.
    assert (await new_group(book, "Other")) > 0
    counted = await stats(book)
    assert counted["contacts"]["created"] == 0
    assert counted["channels"]["contacts"]["rejected"] == 2


async def test_a_dropped_create_is_not_created_twice_on_retry(book: httpx.AsyncClient) -> None:
    """A drop after processing: created, the answer cut; the retry is refused as taken."""
    await configure(book, {"drop": {"after_processing": True}, "channels": ["contacts"]})
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await book.post(CONTACTS, json=contact())
    await configure(book, {"status": {"status": 504, "after_processing": True}})
    assert (
        await book.post(CONTACTS, json=contact(email="bob@example.com", phone=...))
    ).status_code == 504
    await configure(book, {})
    retried = await book.post(CONTACTS, json=contact())
    assert retried.json() == refusal("The email has already been taken.")
    counted = (await stats(book))["contacts"]
    assert (counted["created"], counted["created_twice"], counted["duplicate_refused"]) == (2, 0, 1)
    faults = (await book.get(FAULTS)).json()
    assert faults["injected"]["drop"] == 0  # zeroed by the last configuration


async def test_latency_and_burst_apply_to_contacts(book: httpx.AsyncClient) -> None:
    await configure(book, {"latency_ms": 1, "burst_429": {"requests": 1, "retry_after": 2}})
    response = await book.get(CONTACTS)
    assert (response.status_code, response.headers["retry-after"]) == (429, "2")
    assert (await book.get(CONTACTS)).status_code == 200
    injected = (await book.get(FAULTS)).json()["injected"]
    assert (injected["burst_429"], injected["latency"]) == (1, 1)


async def test_faults_config_knows_the_databases(sandbox: httpx.AsyncClient) -> None:
    for names in (["contacts"], ["groups"], ["mail-contacts"]):
        await configure(sandbox, {"channels": names})
    response = await sandbox.post(FAULTS, json={"allow_duplicates": "yes"})
    assert response.status_code == 400
    assert response.json()["error"]["description"].startswith("allow_duplicates")


# --- mail API -------------------------------------------------------------------------


async def test_mail_keys_are_required(sandbox_url: str, mail: httpx.AsyncClient) -> None:
    base = f"{sandbox_url}/mail/api/"
    response = httpx.get(base + LIST)
    assert response.status_code == 401
    assert response.json() == {
        "status": "failed",
        "errors": {
            "PublicKey": ["The public key field is required."],
            "SecretKey": ["The secret key field is required."],
        },
    }
    response = httpx.post(base + UPLOAD, headers={"PublicKey": MAIL_KEYS["PublicKey"]})
    assert response.status_code == 401
    assert response.json()["errors"] == {"SecretKey": ["The secret key field is required."]}
    for wrong in ({**MAIL_KEYS, "SecretKey": "nope"}, {**MAIL_KEYS, "PublicKey": "nope"}):
        response = httpx.get(base + LIST, headers=wrong)
        assert response.status_code == 401
        assert response.json() == {
            "status": "failed",
            "errors": "Invalid public key or secret key.",
        }
    # Basic auth is not the mail API's.
    response = httpx.get(base + LIST, auth=SANDBOX_AUTH)
    assert response.status_code == 401
    assert (await mail.get(LIST)).status_code == 200


async def test_mail_upload_and_list(mail: httpx.AsyncClient, sandbox: httpx.AsyncClient) -> None:
    text = (
        f"\ufeff{HEADER},Join date\r\n"
        "Alex,Hels,alex@gmail.com,,France,Corsica,Colmar,agen,,agen,6301,2023-11-26\r\n"
        "\r\n"  # blank rows are skipped
        'Test,Demo,TestDemo@Gmail.com,testdemoalt@gmail.com,Antarctica,,,"1, Main St",,,,\r\n'
    )
    response = await upload(mail, text)
    assert (response.status_code, response.json()) == (
        200,
        {"status": "success", "message": "Imported Successfully"},
    )
    body = (await mail.get(LIST)).json()
    assert body["status"] == "success"
    listed = body["message"]["contacts"]
    assert [item["email"] for item in listed] == ["TestDemo@gmail.com", "alex@gmail.com"]
    alex = listed[1]
    assert alex == {
        "id": alex["id"],
        "user_id": 6790,
        "contact_type_id": 3,
        "first_name": "Alex",
        "last_name": "Hels",
        "email": "alex@gmail.com",
        "alt_email": "",
        "country": "France",
        "state": "Corsica",
        "city": "Colmar",
        "address_line1": "agen",
        "address_line2": "",
        "state_province_region": "agen",
        "postal_code": "6301",
        "custom_field": {"join_date": {"field_name": "Join date", "field_value": "2023-11-26"}},
        "deleted_at": None,
        "created_at": alex["created_at"],
        "updated_at": alex["created_at"],
        "fullname": "Alex Hels",
        "contact_type": {
            "id": 3,
            "user_id": 6790,
            "name": "Contact type 3",
            "deleted_at": None,
            "created_at": alex["contact_type"]["created_at"],
            "updated_at": alex["contact_type"]["created_at"],
        },
    }
    assert MAIL_TIME.fullmatch(alex["created_at"])
    assert listed[0]["id"] > alex["id"]
    assert listed[0]["address_line1"] == "1, Main St"
    counted = await stats(sandbox)
    assert counted["mail"] == {"uploads": 1, "rows": 2, "rows_twice": 0, "contacts": 2}
    assert counted["channels"]["mail-contacts"]["requests"] == 2


async def test_mail_upload_twice_is_counted(
    mail: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    text = "email,first_name\nann@example.com,Ann\nbob@example.com,Bob\n"
    assert (await upload(mail, text)).status_code == 200
    assert (await upload(mail, text, contact_type_id="4")).status_code == 200  # another list
    assert (await stats(sandbox))["mail"]["rows_twice"] == 0
    # The same rows into the same contact type again: one contact each, counted twice.
    resent = "Email,First_Name\nANN@example.com,Annie\n"
    assert (await upload(mail, resent)).status_code == 200
    counted = (await stats(sandbox))["mail"]
    assert counted == {"uploads": 3, "rows": 5, "rows_twice": 1, "contacts": 4}
    listed = (await mail.get(LIST)).json()["message"]["contacts"]
    anns = [
        item
        for item in listed
        if item["contact_type_id"] == 3 and item["email"].lower().startswith("ann")
    ]
    assert [item["first_name"] for item in anns] == ["Annie"]  # replaced, not added
    # Twice in one file counts too.
    assert (await upload(mail, "email\ncid@example.com\nCID@example.com\n")).status_code == 200
    assert (await stats(sandbox))["mail"]["rows_twice"] == 2
    # Reset clears it all.
    await sandbox.post("/_sandbox/reset")
    assert (await mail.get(LIST)).json()["message"]["contacts"] == []
    assert (await stats(sandbox))["mail"] == {
        "uploads": 0,
        "rows": 0,
        "rows_twice": 0,
        "contacts": 0,
    }


async def test_mail_upload_fields_are_required(mail: httpx.AsyncClient) -> None:
    response = await mail.post(UPLOAD)
    assert (response.status_code, response.json()) == (
        422,
        {
            "status": "failed",
            "errors": {
                "contact_type_id": ["The contact type id field is required."],
                "file": ["The file field is required."],
            },
        },
    )


@pytest.mark.parametrize(
    ("contact_type_id", "file", "errors"),
    [
        ("abc", None, {"contact_type_id": ["The contact type id must be an integer."]}),
        ("1.5", None, {"contact_type_id": ["The contact type id must be an integer."]}),
        ("0", None, {"contact_type_id": ["The selected contact type id is invalid."]}),
        (
            "3",
            ("contacts.txt", b"email\na@b.co\n"),
            {"file": ["The file must be a file of type: csv."]},
        ),
        ("3", ("contacts.csv", b""), {"file": ["The file must not be empty."]}),
        (
            "3",
            ("contacts.csv", b"email\n\xff\xfe\n"),
            {"file": ["The file must be UTF-8 encoded."]},
        ),
        ("3", ("contacts.csv", b"\n\n"), {"file": ["The file has no header row."]}),
        (
            "3",
            ("contacts.csv", b"name,mail\nAnn,a@b.co\n"),
            {"file": ["The file must have an email column."]},
        ),
        (
            "3",
            ("contacts.csv", b"email,Email\na@b.co,a@b.co\n"),
            {"file": ['The file has the column "Email" twice.']},
        ),
        (
            "3",
            ("contacts.csv", b'email\n"a@b.co\n'),
            {"file": ["The file is not a valid CSV file: unexpected end of data."]},
        ),
        (
            "3",
            (
                "contacts.csv",
                b"email,alt_email,city\nok@example.com,,x\n,,Paris\nbad,,x\nz@example.com,nope,\n"
                b"y@example.com,,x,extra\n",
            ),
            {
                "file": [
                    "Row 3: The email field is required.",
                    "Row 4: The email must be a valid email address.",
                    "Row 5: The alt email must be a valid email address.",
                    "Row 6: 4 cells where the header has 3.",
                ]
            },
        ),
    ],
)
async def test_mail_upload_is_refused_whole(
    mail: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    contact_type_id: str,
    file: tuple[str, bytes] | None,
    errors: dict[str, list[str]],
) -> None:
    files = {"file": (file[0], file[1], "text/csv")} if file else None
    if file is None:
        errors = {**errors, "file": ["The file field is required."]}
    response = await mail.post(UPLOAD, data={"contact_type_id": contact_type_id}, files=files)
    assert (response.status_code, response.json()) == (422, {"status": "failed", "errors": errors})
    assert (await stats(sandbox))["mail"]["contacts"] == 0


async def test_mail_file_must_be_a_file(mail: httpx.AsyncClient) -> None:
    response = await mail.post(UPLOAD, data={"contact_type_id": "3", "file": "email\na@b.co\n"})
    assert response.json() == {"status": "failed", "errors": {"file": ["The file must be a file."]}}


async def test_mail_row_errors_are_capped(mail: httpx.AsyncClient) -> None:
    response = await upload(mail, "email\n" + "bad\n" * 25)
    errors = response.json()["errors"]["file"]
    assert len(errors) == 21
    assert errors[-1] == "… and 5 more."


async def test_mail_unknown_routes(mail: httpx.AsyncClient) -> None:
    response = await mail.get(UPLOAD)
    assert (response.status_code, response.headers["allow"]) == (405, "POST")
    assert response.json() == {"status": "failed", "errors": "Method Not Allowed"}
    response = await mail.get("contacts/details", params={"contact_id": 1})
    assert (response.status_code, response.json()) == (
        404,
        {"status": "failed", "errors": "Not Found"},
    )


async def test_mail_faults_answer_the_mail_apis_body(
    mail: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    await configure(sandbox, {"channels": ["mail-contacts"], "error": {"code": 422}})
    response = await upload(mail, "email\nann@example.com\n")
    assert (response.status_code, response.json()) == (
        422,
        {"status": "failed", "errors": "Input validation error"},
    )
    await configure(sandbox, {"channels": ["mail-contacts"], "error": {"code": 101}})
    response = await mail.get(LIST)
    assert (response.status_code, response.json()) == (
        500,
        {"status": "failed", "errors": "Internal Database error"},
    )
    # A drop after processing: the upload landed, the answer was cut.
    await configure(sandbox, {"channels": ["mail-contacts"], "drop": {"after_processing": True}})
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await upload(mail, "email\nann@example.com\n")
    await configure(sandbox, {})
    assert (await upload(mail, "email\nann@example.com\n")).status_code == 200  # resent
    counted = await stats(sandbox)
    assert counted["mail"] == {"uploads": 2, "rows": 2, "rows_twice": 1, "contacts": 1}
    # Faults come after the keys: a bad key is answered 401, the fault kept.
    await configure(sandbox, {"error": {"code": 101}})
    response = await mail.get(LIST, headers={"SecretKey": "nope"})
    assert response.status_code == 401
    assert (await sandbox.get(FAULTS)).json()["injected"]["error"] == 0
