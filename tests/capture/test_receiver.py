"""Stream receivers: the tap follows messages across any chunking, files keep every byte."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.capture import receiver
from webapp.capture.levels import LiveModule, db_of, decimate
from webapp.capture.receiver import StreamFile, StreamReceiver, StreamTap
from webapp.openapi.stream import (
    SignalInterpretation,
    encode_data_quality,
    encode_interpretation,
    encode_signal_data,
    ticks_per_sample,
)

RATE = 65536
T0 = 7301444404273741824
STEP = ticks_per_sample(RATE)


def stream(blocks: int = 4, signals: int = 3, values: int = 64) -> bytes:
    out = [
        encode_interpretation(
            T0, SignalInterpretation(s, scale_factor=2.0, sample_rate=RATE, unit="Pa")
        )
        for s in range(1, signals + 1)
    ]
    for b in range(blocks):
        t = T0 + b * values * STEP
        if b == 2:
            out.append(encode_data_quality(t, [(2, 0x02)]))
        for s in range(1, signals + 1):
            out.append(
                encode_signal_data(t, s, np.full(values, 1000 * s * (b + 1), dtype=np.int32))
            )
    return b"".join(out)


@given(st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=60))
@settings(max_examples=60, deadline=None)
def test_tap_is_independent_of_chunking(cuts: list[int]):
    data = stream()
    seen: list[tuple[int, int]] = []
    qualities: list[tuple[int, int, int]] = []
    tap = StreamTap(
        on_block=lambda sid, raw, interp: seen.append((sid, int(raw[0]))),
        on_quality=lambda sid, v, t: qualities.append((sid, v, t)),
    )
    pos = 0
    for cut in cuts:
        tap.feed(data[pos : pos + cut])
        pos += cut
    tap.feed(data[pos:])
    assert tap.messages == 3 + 12 + 1 and tap.signal_messages == 12
    assert tap.first_ticks == T0
    assert tap.covered_ticks() == 4 * 64 * STEP
    assert qualities == [(2, 0x02, T0 + 2 * 64 * STEP)]
    # the first block of each signal is decoded for the live view, then none until asked
    assert seen == [(1, 1000), (2, 2000), (3, 3000)]
    tap.wanted = {2}
    tap.feed(encode_signal_data(T0 + 4 * 64 * STEP, 2, np.full(64, -7, dtype=np.int32)))
    assert seen[-1] == (2, -7)


def test_stream_file_keeps_every_byte(tmp_path: Path):
    f = StreamFile(tmp_path / "x.stream")
    chunks = [bytes([i]) * (1000 + i * 777) for i in range(200)]
    for c in chunks:
        f.write(memoryview(c))
    f.close()
    data = (tmp_path / "x.stream").read_bytes()
    assert data == b"".join(chunks)
    assert f.bytes == f.written == len(data)
    assert f.digest == hashlib.sha256(data).hexdigest()


def test_receiver_reports_an_unexpected_end_and_an_expected_one(tmp_path: Path):
    ends: list[str | None] = []
    events = []
    for expect in (False, True):
        ours, theirs = socket.socketpair()
        live = LiveModule("m", events.append)
        r = StreamReceiver(
            "m", ours, tmp_path / f"{expect}.stream", live, lambda s: s, lambda r, e: ends.append(e)
        )
        r.expect_end = expect
        r.start()
        theirs.sendall(stream())
        theirs.close()
        assert r.ended.wait(5)
        r.close()
        assert (tmp_path / f"{expect}.stream").read_bytes() == stream()
    assert ends[0] is not None and "closed its stream socket after" in ends[0]
    assert ends[1] is None
    kinds = {e.kind for e in events}
    assert {"levels", "waveform", "data-quality"} <= kinds


def test_close_ends_a_waiting_receiver(tmp_path: Path):
    ours, theirs = socket.socketpair()
    ended = threading.Event()
    r = StreamReceiver(
        "m",
        ours,
        tmp_path / "w.stream",
        LiveModule("m", lambda e: None),
        lambda s: s,
        lambda r, e: ended.set(),
    )
    r.start()
    theirs.sendall(b"BK")  # a partial header, then silence
    r.close(timeout=5)
    assert ended.is_set() and r.error is None
    assert (tmp_path / "w.stream").read_bytes() == b"BK"
    theirs.close()


def test_levels_and_decimation():
    events = []
    live = LiveModule("m", events.append)
    raw = np.round(np.sin(np.arange(4096) * 2 * np.pi / 64) * (1 << 22)).astype(np.int32)
    live.block(1, raw, 2.0, 0.0, "Pa", 65536)  # amplitude 1 Pa
    assert live.tick()
    (levels,) = [e for e in events if e.kind == "levels"]
    entry = levels.levels[0]
    assert abs(entry["rms"] - 2**-0.5) < 1e-3 and abs(entry["peak"] - 1.0) < 1e-3
    assert abs(entry["db"] - db_of(2**-0.5, "Pa")) < 1e-6 and 90 < entry["db"] < 92
    (wave,) = [e for e in events if e.kind == "waveform"]
    assert wave.sample_rate == 32768 and len(wave.values) == 2048
    assert wave.values.dtype == np.float32 and abs(float(np.max(wave.values)) - 1.0) < 0.01
    reduced, factor = decimate(np.arange(10.0), 3)
    assert factor == 4 and list(reduced) == [1.5, 5.5]
    assert db_of(0.0, "V") is None


def test_a_failing_live_view_never_stops_the_file(tmp_path: Path):
    ends: list[str | None] = []

    def channel_of(sid: int) -> int:
        raise KeyError(sid)  # a bug in the display path

    ours, theirs = socket.socketpair()
    r = StreamReceiver(
        "m",
        ours,
        tmp_path / "l.stream",
        LiveModule("m", lambda e: None),
        channel_of,
        lambda r, e: ends.append(e),
    )
    r.expect_end = True
    r.start()
    theirs.sendall(stream())
    theirs.close()
    assert r.ended.wait(5)
    r.close()
    assert (tmp_path / "l.stream").read_bytes() == stream()
    assert ends == [None]


def test_a_writer_that_fails_releases_a_held_receiver(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(receiver, "MAX_PENDING", 1000)
    f = StreamFile(tmp_path / "h.stream")

    def broken(batch: list[bytes]) -> None:
        raise RuntimeError("not an OSError")

    f._write_batch = broken  # type: ignore[method-assign]
    raised: list[BaseException] = []

    def receive() -> None:
        try:
            for _ in range(100):
                f.write(memoryview(b"x" * 4000))  # held: more pending than MAX_PENDING
        except OSError as exc:
            raised.append(exc)

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive() and raised and "not an OSError" in str(raised[0])
    try:
        f.close()
    except OSError as exc:
        assert "not an OSError" in str(exc)
    else:
        raise AssertionError("close() must report the write failure")


def _receiver_behind_a_small_write_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[socket.socket, StreamReceiver]:
    """A receiver on a real TCP connection whose file writer lets only 64 KiB wait, so a
    slowed disk soon holds the receiver back; returns the sending end and the receiver."""
    monkeypatch.setattr(receiver, "MAX_PENDING", 64 * 1024)
    monkeypatch.setattr(receiver, "WRITE_INTERVAL_S", 0.05)
    with socket.create_server(("127.0.0.1", 0)) as server:
        theirs = socket.create_connection(server.getsockname())
        ours, _ = server.accept()
    r = StreamReceiver(
        "m",
        ours,
        tmp_path / "s.stream",
        LiveModule("m", lambda e: None),
        lambda s: s,
        lambda r, e: None,
        chunk_size=16 * 1024,
    )
    return theirs, r


def test_close_waits_for_a_receiver_held_back_by_a_slow_disk(tmp_path: Path, monkeypatch):
    theirs, r = _receiver_behind_a_small_write_queue(tmp_path, monkeypatch)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    write = r.file._write_batch
    batches = threading.Semaphore(0)

    def slow(batch: list[bytes]) -> None:
        batches.acquire()  # the disk writes only when the test lets it
        write(batch)

    r.file._write_batch = slow  # type: ignore[method-assign]
    r.expect_end = True
    r.start()
    data = bytes(range(256)) * 8192  # 2 MiB: far more than MAX_PENDING
    sender = threading.Thread(target=lambda: (theirs.sendall(data), theirs.close()), daemon=True)
    sender.start()

    def disk() -> None:
        while not r.ended.is_set() or r.file.written < r.file.bytes:
            batches.release()
            time.sleep(0.02)

    threading.Thread(target=disk, daemon=True).start()
    sender.join(30)  # all sent: the rest waits in the socket buffers, the disk still behind
    assert not sender.is_alive() and not r.ended.is_set()
    closer = threading.Thread(target=r.close, kwargs={"timeout": 0.3}, daemon=True)
    closer.start()
    closer.join(30)
    assert not closer.is_alive()
    assert (tmp_path / "s.stream").read_bytes() == data


def test_close_that_gives_up_says_how_many_bytes_were_lost(tmp_path: Path, monkeypatch):
    theirs, r = _receiver_behind_a_small_write_queue(tmp_path, monkeypatch)
    write = r.file._write_batch
    stuck = threading.Event()

    def stalled(batch: list[bytes]) -> None:
        stuck.wait(30)  # the disk makes no progress until close() has given up
        write(batch)

    r.file._write_batch = stalled  # type: ignore[method-assign]
    r.expect_end = True
    r.start()

    def send() -> None:
        with contextlib.suppress(OSError):  # reset once the receiver is abandoned
            theirs.sendall(bytes(4 << 20))
        theirs.close()

    threading.Thread(target=send, daemon=True).start()
    deadline = time.monotonic() + 30

    def held() -> bool:
        """The receiver waits for the disk, and bytes wait in the socket behind it (not merely
        a receiver that has not caught up yet, which close() would let finish)."""
        return r.file._pending_bytes > receiver.MAX_PENDING and receiver._unread(r.sock) not in (
            None,
            0,
        )

    while not held() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert held()
    closer = threading.Thread(target=r.close, kwargs={"timeout": 0.2}, daemon=True)
    closer.start()
    while not r.abandoned and closer.is_alive():
        closer.join(0.05)
    stuck.set()
    closer.join(30)
    assert not closer.is_alive()
    assert r.abandoned
    assert r.unread_bytes is not None and r.unread_bytes > 0
    assert r.loss is not None and "s.stream" in r.loss and f"{r.unread_bytes} bytes" in r.loss


@given(st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=40))
@settings(max_examples=40, deadline=None)
def test_the_tap_knows_where_the_last_message_ended(cuts: list[int]):
    data = stream()
    ends = []  # byte offsets where messages end, from an independent walk of the headers
    pos = 0
    while pos < len(data):
        length = int.from_bytes(data[pos + 24 : pos + 28], "little")
        pos += 28 + length
        ends.append(pos)
    tap = StreamTap()
    fed = 0
    for cut in [*cuts, len(data)]:
        piece = data[fed : fed + cut]
        tap.feed(piece)
        fed += len(piece)
        assert tap.fed - tap.partial == max([0, *(e for e in ends if e <= fed)])
        if fed >= len(data):
            break


def _gapped_blocks(first: int, count: int, values: int = 64) -> bytes:
    return b"".join(
        encode_signal_data(T0 + b * values * STEP, s, np.full(values, b, dtype=np.int32))
        for b in range(first, first + count)
        for s in (1, 2, 3)
    )


def test_a_dropped_stream_is_connected_again_and_the_file_stays_a_stream(tmp_path: Path):
    """Half a message, then the connection drops: the half is cut off the file and counted,
    the new connection (Interpretations again, then blocks two later) is appended, the gap is
    counted as lost samples, and the file is a valid stream a strict checker reads."""
    from tests.streamcheck import check_file
    from webapp.capture.stream_connections import lost_samples

    first_ours, first_theirs = socket.socketpair()
    second_ours, second_theirs = socket.socketpair()
    head = stream(blocks=0) + _gapped_blocks(0, 3)
    half = _gapped_blocks(3, 1)[:100]
    ends: list[str | None] = []
    drops: list[dict] = []
    r = StreamReceiver(
        "m",
        first_ours,
        tmp_path / "d.stream",
        LiveModule("m", lambda e: None),
        lambda s: s,
        lambda r, e: ends.append(e),
        reconnect=lambda: second_ours,
        on_reconnect=lambda r, d: drops.append(d),
    )
    r.start()
    first_theirs.sendall(head + half)
    first_theirs.close()
    second_theirs.sendall(
        stream(blocks=0) + encode_data_quality(T0, [(1, 0x10), (2, 0x10), (3, 0x10)])
    )
    second_theirs.sendall(_gapped_blocks(5, 2))
    deadline = time.monotonic() + 10
    while r.tap.signal_messages < 15 and time.monotonic() < deadline:
        time.sleep(0.01)
    r.expect_end = True
    second_theirs.close()
    assert r.ended.wait(10)
    r.close()
    assert ends == [None]
    assert [(d["reconnected"], d["discarded_bytes"]) for d in drops] == [(True, 100)]
    data = (tmp_path / "d.stream").read_bytes()
    reconnected = (
        stream(blocks=0)
        + encode_data_quality(T0, [(1, 0x10), (2, 0x10), (3, 0x10)])
        + _gapped_blocks(5, 2)
    )
    assert data == head + reconnected  # the half message is gone, nothing else
    assert r.file.bytes == len(data)
    assert r.file.digest == hashlib.sha256(data).hexdigest()
    report = check_file(tmp_path / "d.stream")
    assert report.messages > 0
    assert lost_samples(r, [1, 2, 3]) == {"1": 128, "2": 128, "3": 128}  # blocks 3 and 4
