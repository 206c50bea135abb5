"""Control commands: what parses, what is refused and how, and the handler table."""

import asyncio
import json

import pytest

from redline.pipeline.control.commands import Command, CommandError, Handlers, answer, parse


def body(verb, *args) -> bytes:
    return json.dumps({"verb": verb, "args": list(args)}).encode()


@pytest.mark.parametrize(
    ("request_", "want"),
    [
        (body("status"), Command("status", (), {})),
        (b'{"verb": "status"}', Command("status", (), {})),  # args may be left out
        (body("swap", "demo@2"), Command("swap", ("demo@2",), {"model": "demo", "version": "2"})),
        (body("swap", "a@b@c"), Command("swap", ("a@b@c",), {"model": "a", "version": "b@c"})),
        (body("kill-switch", "off"), Command("kill-switch", ("off",), {"on": False})),
        (body("restart-worker", "b"), Command("restart-worker", ("b",), {"worker": "B"})),
        (body("drain"), Command("drain", (), {})),
        (body("rollback"), Command("rollback", (), {})),
    ],
)
def test_commands_parse_into_handler_arguments(request_, want):
    assert parse(request_) == want


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (b"", "not JSON"),
        (b"\xff", "not JSON"),
        (b'"status"', 'expected a JSON object with a "verb" string'),
        (b'{"verb": 3}', 'expected a JSON object with a "verb" string'),
        (body("reboot"), "unknown verb 'reboot'; valid: status, swap, rollback, confirm, drain"),
        (b'{"verb": "swap", "args": "demo@2"}', 'swap: "args" must be a list of strings'),
        (b'{"verb": "swap", "args": [2]}', 'swap: "args" must be a list of strings'),
        (body("swap"), "swap: takes 1 argument(s), got 0; usage: swap MODEL@VERSION"),
        (body("swap", "@2"), "swap: '@2' is not MODEL@VERSION"),
        (body("swap", "demo@"), "swap: 'demo@' is not MODEL@VERSION"),
        (body("status", "now"), "status: takes 0 argument(s), got 1"),
        (body("kill-switch", "ON!"), "kill-switch: 'ON!'; usage: kill-switch on|off"),
        (b" " * 70_000, "a command is under"),
    ],
)
def test_requests_that_are_not_commands_say_why(request_, error):
    with pytest.raises(CommandError) as exc:
        parse(request_)
    assert error in str(exc.value)


def test_the_handler_table_runs_what_is_registered_and_names_what_is_not():
    h = Handlers()

    async def swap(model: str, version: str) -> dict:
        return {"to": f"{model}@{version}"}

    with pytest.raises(ValueError, match="swap: this graph has no swap handler"):
        asyncio.run(h.run(parse(body("swap", "m@1"))))
    h.register("swap", swap)
    assert "swap" in h and "rollback" not in h
    assert asyncio.run(h.run(parse(body("swap", "m@1")))) == {"to": "m@1"}
    with pytest.raises(ValueError, match="no control verb 'reboot'"):
        h.register("reboot", swap)


def test_answers_are_json_with_ok_and_either_a_result_or_an_error():
    assert json.loads(answer("status", {"decisions": 3})) == {
        "ok": True, "verb": "status", "result": {"decisions": 3}}  # fmt: skip
    assert json.loads(answer(None, error="not JSON")) == {"ok": False, "error": "not JSON"}
