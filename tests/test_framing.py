"""OCPP-J framing: parse() of every message type and every refusal, and the encoders."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocppcable.ocpp import framing
from ocppcable.ocpp.framing import (
    MAX_UNIQUE_ID,
    UNKNOWN_ID,
    Call,
    CallError,
    CallResult,
    ErrorKind,
    FrameError,
)

ID36 = "x" * MAX_UNIQUE_ID
ID37 = "x" * (MAX_UNIQUE_ID + 1)


# --- well-formed frames ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[2,"1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]',
            Call("1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}),
        ),
        ('[2, "abc", "Heartbeat", {}]', Call("abc", "Heartbeat", {})),
        (f'[2,"{ID36}","Heartbeat",{{}}]', Call(ID36, "Heartbeat", {})),
        (
            '[2,"ü-1","DataTransfer",{"data":"ünïcode"}]',
            Call("ü-1", "DataTransfer", {"data": "ünïcode"}),
        ),
        ('[3,"7",{"status":"Accepted"}]', CallResult("7", {"status": "Accepted"})),
        ('[3,"7",{}]', CallResult("7", {})),
        (
            '[4,"9","NotSupported","no such thing",{"why":"because"}]',
            CallError("9", "NotSupported", "no such thing", {"why": "because"}),
        ),
        ('[4,"9","InternalError","",{}]', CallError("9", "InternalError", "", {})),
        # errorDetails that is not an object is tolerated and read as {}
        ('[4,"9","GenericError","x",null]', CallError("9", "GenericError", "x", {})),
        ('[4,"9","GenericError","x",[1,2]]', CallError("9", "GenericError", "x", {})),
        ('[4,"9","GenericError","x","details"]', CallError("9", "GenericError", "x", {})),
        # surrounding whitespace is fine JSON
        (' \n[3,"1",{}]\n ', CallResult("1", {})),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_parse_valid(text: str, expected: framing.Message) -> None:
    assert framing.parse(text) == expected


def test_parse_keeps_nested_payload() -> None:
    payload = {"connectorId": 1, "meterValue": [{"sampledValue": [{"value": "1.5"}]}]}
    message = framing.parse(json.dumps([2, "m", "MeterValues", payload]))
    assert isinstance(message, Call)
    assert message.payload == payload


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "unique_id"),
    [
        # not JSON
        ("", ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        ("not json", ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        ('[2,"1","Heartbeat",{}', ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        ('[2,"1","Heartbeat",{}] trailing', ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        ("[2,'1','Heartbeat',{}]", ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        # not an array
        ("{}", ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        ('{"0":2,"1":"x"}', ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        ('"[2,\\"1\\",\\"Heartbeat\\",{}]"', ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        ("2", ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        ("null", ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        ("true", ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        # empty array
        ("[]", ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        # wrong arity (the uniqueId is recovered when readable)
        ("[2]", ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        ('[2,"1"]', ErrorKind.RPC_FRAMEWORK, "1"),
        ('[2,"1","Heartbeat"]', ErrorKind.RPC_FRAMEWORK, "1"),
        ('[2,"1","Heartbeat",{},{}]', ErrorKind.RPC_FRAMEWORK, "1"),
        ('[3,"1"]', ErrorKind.RPC_FRAMEWORK, "1"),
        ('[3,"1",{},{}]', ErrorKind.RPC_FRAMEWORK, "1"),
        ('[4,"1","GenericError","x"]', ErrorKind.RPC_FRAMEWORK, "1"),
        ('[4,"1","GenericError","x",{},{}]', ErrorKind.RPC_FRAMEWORK, "1"),
        # unknown message type id (an integer)
        ('[5,"1",{}]', ErrorKind.MESSAGE_TYPE, "1"),
        ('[6,"1","Heartbeat",{}]', ErrorKind.MESSAGE_TYPE, "1"),
        ('[0,"1","Heartbeat",{}]', ErrorKind.MESSAGE_TYPE, "1"),
        ('[-2,"1","Heartbeat",{}]', ErrorKind.MESSAGE_TYPE, "1"),
        ("[1]", ErrorKind.MESSAGE_TYPE, UNKNOWN_ID),
        # message type id that is not an integer
        ('["2","1","Heartbeat",{}]', ErrorKind.RPC_FRAMEWORK, "1"),
        ('[2.5,"1","Heartbeat",{}]', ErrorKind.RPC_FRAMEWORK, "1"),
        ('[true,"1","Heartbeat",{}]', ErrorKind.RPC_FRAMEWORK, "1"),
        ('[null,"1","Heartbeat",{}]', ErrorKind.RPC_FRAMEWORK, "1"),
        ('[[2],"1","Heartbeat",{}]', ErrorKind.RPC_FRAMEWORK, "1"),
        # uniqueId that is not a string, is empty or is too long → "-1"
        ('[2,1,"Heartbeat",{}]', ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        ('[2,null,"Heartbeat",{}]', ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        ('[2,{},"Heartbeat",{}]', ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        ('[2,"","Heartbeat",{}]', ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        (f'[2,"{ID37}","Heartbeat",{{}}]', ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        (f'[3,"{ID37}",{{}}]', ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        ('[4,7,"GenericError","x",{}]', ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        # an unreadable uniqueId does not mask a wrong arity or an unknown type
        ('[2,1,"Heartbeat"]', ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID),
        (f'[9,"{ID37}"]', ErrorKind.MESSAGE_TYPE, UNKNOWN_ID),
        # CALL: action not a non-empty string
        ('[2,"1","",{}]', ErrorKind.RPC_FRAMEWORK, "1"),
        ('[2,"1",null,{}]', ErrorKind.RPC_FRAMEWORK, "1"),
        ('[2,"1",7,{}]', ErrorKind.RPC_FRAMEWORK, "1"),
        ('[2,"1",["Heartbeat"],{}]', ErrorKind.RPC_FRAMEWORK, "1"),
        # CALL: payload not an object
        ('[2,"1","Heartbeat",[]]', ErrorKind.FORMAT, "1"),
        ('[2,"1","Heartbeat",null]', ErrorKind.FORMAT, "1"),
        ('[2,"1","Heartbeat","{}"]', ErrorKind.FORMAT, "1"),
        ('[2,"1","Heartbeat",1]', ErrorKind.FORMAT, "1"),
        # CALLRESULT: payload not an object
        ('[3,"1",[]]', ErrorKind.FORMAT, "1"),
        ('[3,"1",null]', ErrorKind.FORMAT, "1"),
        ('[3,"1","ok"]', ErrorKind.FORMAT, "1"),
        # CALLERROR: code / description not strings
        ('[4,"1",7,"x",{}]', ErrorKind.RPC_FRAMEWORK, "1"),
        ('[4,"1","GenericError",null,{}]', ErrorKind.RPC_FRAMEWORK, "1"),
        ('[4,"1",null,null,{}]', ErrorKind.RPC_FRAMEWORK, "1"),
    ],
)
def test_parse_refuses(text: str, kind: ErrorKind, unique_id: str) -> None:
    with pytest.raises(FrameError) as info:
        framing.parse(text)
    error = info.value
    assert error.kind is kind
    assert error.unique_id == unique_id
    assert error.description and str(error) == error.description


def test_frame_error_carries_its_fields() -> None:
    error = FrameError(ErrorKind.PROTOCOL, "42", "why")
    assert (error.kind, error.unique_id, error.description, str(error)) == (
        ErrorKind.PROTOCOL,
        "42",
        "why",
        "why",
    )


def test_unknown_message_type_description_names_the_id() -> None:
    with pytest.raises(FrameError, match="unknown message type id 5"):
        framing.parse('[5,"1",{}]')


# --- encoders ------------------------------------------------------------------------------


def test_encode_call_is_compact_json() -> None:
    assert framing.encode_call("1", "Reset", {"type": "Soft"}) == '[2,"1","Reset",{"type":"Soft"}]'


def test_encode_result_is_compact_json() -> None:
    assert framing.encode_result("1", {"currentTime": "t"}) == '[3,"1",{"currentTime":"t"}]'


@pytest.mark.parametrize(
    ("details", "encoded_details"),
    [(None, "{}"), ({}, "{}"), ({"a": 1}, '{"a":1}')],
)
def test_encode_error(details: object, encoded_details: str) -> None:
    assert (
        framing.encode_error("1", "InternalError", "boom", details)
        == f'[4,"1","InternalError","boom",{encoded_details}]'
    )


def test_encode_error_without_details() -> None:
    assert framing.encode_error("-1", "FormationViolation", "bad") == (
        '[4,"-1","FormationViolation","bad",{}]'
    )


def test_encoders_keep_unicode_unescaped() -> None:
    assert framing.encode_result("é", {"text": "ünï"}) == '[3,"é",{"text":"ünï"}]'


@pytest.mark.parametrize(
    "message",
    [
        Call("1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}),
        Call(ID36, "DataTransfer", {"vendorId": "ü", "data": '["nested", "json"]'}),
        Call("x", "MeterValues", {"meterValue": [{"sampledValue": [{"value": "1"}]}]}),
        CallResult("2", {}),
        CallResult("2", {"idTagInfo": {"status": "Accepted"}, "transactionId": 5}),
        CallError("3", "NotImplemented", "", {}),
        CallError("3", "GenericError", 'with "quotes" and \\', {"k": [1, None, True]}),
    ],
)
def test_round_trip(message: framing.Message) -> None:
    if isinstance(message, Call):
        text = framing.encode_call(message.unique_id, message.action, message.payload)
    elif isinstance(message, CallResult):
        text = framing.encode_result(message.unique_id, message.payload)
    else:
        text = framing.encode_error(
            message.unique_id, message.code, message.description, message.details
        )
    assert framing.parse(text) == message


# --- text that JSON allows but nothing downstream can carry (issue 12, items 3-5) -------------


@pytest.mark.parametrize(
    ("text", "unique_id"),
    [
        # a lone surrogate cannot be encoded as UTF-8: not to the backend, not echoed back
        ('[2,"1","DataTransfer",{"vendorId":"\\ud800"}]', "1"),
        ('[2,"1","DataTransfer",{"vendorId":"a\\udfffb"}]', "1"),
        ('[2,"1","DataTransfer",{"\\udc00":"key"}]', "1"),
        ('[2,"1","DataTransfer",{"data":["\\uDBFF"]}]', "1"),
        ('[3,"1",{"status":"\\ud800"}]', "1"),
        ('[2,"\\ud800","Heartbeat",{}]', UNKNOWN_ID),  # never echoed back
        ('[2,"1","\\ud800",{}]', "1"),
        # NaN, infinities and numbers beyond a double are not JSON
        ('[2,"1","DataTransfer",{"vendorId":"v","data":NaN}]', "1"),
        ('[2,"1","DataTransfer",{"vendorId":"v","data":Infinity}]', "1"),
        ('[2,"1","DataTransfer",{"vendorId":"v","data":-Infinity}]', "1"),
        ('[2,"1","DataTransfer",{"vendorId":"v","data":1e400}]', "1"),
        ('[2,"1","DataTransfer",{"vendorId":"v","data":[-1.5e999]}]', "1"),
        ("[2,NaN]", UNKNOWN_ID),
        # nesting beyond MAX_DEPTH, refused before the parser recurses into it
        ("[" * 30_000 + "]" * 30_000, UNKNOWN_ID),
        ('[2,"deep","DataTransfer",{"data":' + "[" * 40 + "]" * 40 + "}]", "deep"),
        ('[2,"deep","DataTransfer",{"data":' + '{"a":' * 40 + "1" + "}" * 40 + "}]", "deep"),
        ("[" * 30_000, UNKNOWN_ID),  # not even closed
    ],
    ids=lambda v: v[:60],
)
def test_parse_refuses_what_cannot_be_carried(text: str, unique_id: str) -> None:
    with pytest.raises(FrameError) as info:
        framing.parse(text)
    assert (info.value.kind, info.value.unique_id) == (ErrorKind.FORMAT, unique_id)


@pytest.mark.parametrize(
    "text",
    [
        # a surrogate pair is one character, and an escaped backslash is no escape
        '[2,"1","DataTransfer",{"vendorId":"\\ud83d\\ude00"}]',
        '[2,"1","DataTransfer",{"vendorId":"\\\\ud800"}]',
        # brackets inside strings do not count as nesting
        '[2,"1","DataTransfer",{"vendorId":"' + "[" * 100 + '"}]',
        '[2,"1","DataTransfer",{"vendorId":"\\"' + "{" * 100 + '"}]',
        # exactly MAX_DEPTH levels (frame, payload, arrays), and many brackets side by side
        '[2,"1","DataTransfer",{"data":'
        + "[" * (framing.MAX_DEPTH - 2)
        + "]" * (framing.MAX_DEPTH - 2)
        + "}]",
        '[2,"1","MeterValues",{"v":[' + ",".join(["[1.5e300,{}]"] * 100) + "]}]",
    ],
    ids=lambda v: v[:60],
)
def test_parse_accepts_what_can_be_carried(text: str) -> None:
    assert isinstance(framing.parse(text), Call)


def test_surrogate_pair_is_read_as_one_character() -> None:
    message = framing.parse('[2,"1","DataTransfer",{"vendorId":"\\ud83d\\ude00"}]')
    assert message.payload == {"vendorId": "\U0001f600"}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_encoders_never_write_non_standard_json(value: float) -> None:
    with pytest.raises(ValueError):
        framing.encode_call("1", "DataTransfer", {"data": value})


@pytest.mark.parametrize(
    "text",
    ["NaN", '{"a":Infinity}', '"\\ud800"', "[" * 33 + "]" * 33, "{", '{"a":1e400}'],
)
def test_loads_refuses_with_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        framing.loads(text)


def test_loads_reads_standard_json() -> None:
    assert framing.loads('{"a":[1,2.5,"\\u00e9",null,true]}') == {"a": [1, 2.5, "é", None, True]}


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


#: strings made of what could confuse a scan for brackets outside strings
_tricky = st.recursive(
    st.text(alphabet='[]{}"\\\nu0', max_size=6) | st.integers(),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\', max_size=4), children, max_size=3)
    ),
    max_leaves=30,
)


@given(_tricky, st.integers(min_value=0, max_value=6), st.booleans())
@settings(max_examples=500)
def test_too_deep_counts_only_brackets_outside_strings(value, limit, ascii_only) -> None:
    """The scan agrees with the depth of what the decoder reads, whatever the strings hold."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert framing.too_deep(text, limit) == (_depth(value) > limit)


@given(st.text())
@settings(max_examples=300)
def test_parse_of_any_text_returns_or_refuses(text: str) -> None:
    """Whatever the text (lone surrogates included: a str can hold them), parse returns a
    message or raises FrameError; a uniqueId it reports can be encoded."""
    try:
        framing.parse(text)
    except FrameError as e:
        assert framing.is_unicode(e.unique_id)


@given(_json)
@settings(max_examples=300)
def test_parse_accepts_every_standard_payload_and_the_frame_encodes(payload: object) -> None:
    frame = json.dumps([2, "1", "DataTransfer", {"data": payload}], ensure_ascii=True)
    try:
        message = framing.parse(frame)
    except FrameError as e:
        # refused only for what cannot be carried
        assert e.kind is ErrorKind.FORMAT
        assert framing.too_deep(frame) or "surrogate" in e.description
        return
    text = framing.encode_call(message.unique_id, message.action, message.payload)
    text.encode("utf-8")  # never a lone surrogate
    assert json.loads(text) == json.loads(frame)
