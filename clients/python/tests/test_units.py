"""Pieces checked without a gateway: the download sink's checksum and the SSE framing."""

import hashlib
import os

import httpx
import pytest

from event_bridge import TransportError
from event_bridge._core import SseParser
from event_bridge.client import _Sink


def test_a_download_that_is_not_the_object_is_refused_and_leaves_no_file(tmp_path):
    dest = tmp_path / "f.bin"
    sink = _Sink(dest)
    wrong = httpx.Response(200, headers={"x-checksum-sha256": hashlib.sha256(b"xyz").hexdigest()})
    assert sink.start(wrong) == 0
    sink.write(b"abc")
    with pytest.raises(TransportError):
        sink.finish(wrong)
    assert os.listdir(tmp_path) == []
    sink = _Sink(dest)
    right = httpx.Response(200, headers={"x-checksum-sha256": hashlib.sha256(b"abc").hexdigest()})
    sink.start(right)
    sink.write(b"abc")
    sink.finish(right)
    assert dest.read_bytes() == b"abc"


def test_sse_framing():
    parser = SseParser()
    lines = [": keep-alive", "", "id: 7", "event: license.issued", "data: {\"a\":", "data: 1}", "", "data: x"]
    events = [e for line in lines for e in parser.feed(line)]
    assert events == [("7", "license.issued", '{"a":\n1}')]
    assert parser.last_id == "7"
