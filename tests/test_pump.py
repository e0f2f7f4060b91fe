"""InflatePump: compressed batches in, inflated steps out, inflated ahead on its own thread,
with bounded memory, in order, stopping at damage and on close."""

from __future__ import annotations

import gc
import gzip
import io
import platform
import subprocess
import sys
import tarfile
import threading
import time

import pytest

from fixtures.images import seeded_bytes
from layerpeek.core.errors import CorruptLayer
from layerpeek.core.layers import pump as pump_module
from layerpeek.core.layers.entry import TarEntry
from layerpeek.core.layers.pump import InflatePump
from layerpeek.core.layers.scan import Inflated, LayerReader
from layerpeek.core.runtime import YOUNG_THRESHOLD, tuned_process

BATCH = 64 << 10
STEP = 256 << 10


def layer(files: int = 400, size: int = 20_000) -> tuple[bytes, bytes]:
    """A tar of half-compressible files and its gzip."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(files):
            data = seeded_bytes(i, size // 2) + bytes(size // 2)
            info = tarfile.TarInfo(f"data/file-{i:04d}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    return raw, gzip.compress(raw, 6)


def batches(blob: bytes) -> list[bytes]:
    return [blob[i : i + BATCH] for i in range(0, len(blob), BATCH)]


def wait_idle(pump: InflatePump) -> None:
    deadline = time.monotonic() + 30
    while pump.inflating:
        assert time.monotonic() < deadline, "the inflater never paused"
        time.sleep(0.001)


def give_all(pump: InflatePump, batches: list[bytes]) -> None:
    for batch in batches:
        pump.give(batch)


def drain(pump: InflatePump, reader: LayerReader, feed: list[bytes]) -> list[Inflated]:
    """Take every step, giving the next batch whenever the inflater runs dry."""
    steps = []
    while True:
        step = pump.take()
        if step is not None:
            steps.append(step)
            reader.scan(step)
        elif feed:
            pump.give(feed.pop(0))
        else:
            return steps


def test_steps_come_out_in_order_and_inflate_to_the_tar():
    raw, blob = layer()
    reader = LayerReader(step_output=STEP)
    pump = InflatePump(reader)
    steps = drain(pump, reader, batches(blob))
    assert b"".join(piece for step in steps for piece in step.pieces) == raw
    assert [s.consumed for s in steps] == sorted(s.consumed for s in steps)
    assert steps[-1].consumed == len(blob)
    reader.close()  # the gzip member and the tar stream both ended well


def test_the_scan_of_pumped_steps_finds_every_entry():
    _, blob = layer()
    reader = LayerReader(step_output=STEP)
    pump = InflatePump(reader)
    feed = batches(blob)
    entries: list[TarEntry] = []
    while (step := pump.take()) is not None or feed:
        if step is None:
            pump.give(feed.pop(0))
            continue
        entries += [e for e in reader.scan(step) if isinstance(e, TarEntry)]
    reader.close()
    assert [e.path for e in entries] == [f"data/file-{i:04d}.bin" for i in range(400)]


def test_the_inflater_pauses_once_enough_is_waiting(monkeypatch):
    monkeypatch.setattr(pump_module, "AHEAD", 1 << 20)
    raw, blob = layer()
    reader = LayerReader(step_output=STEP)
    pump = InflatePump(reader)
    for batch in batches(blob):  # all input at once: only AHEAD bounds the work done
        pump.give(batch)
    wait_idle(pump)
    assert len(raw) > 4 * (1 << 20)
    assert reader.consumed < len(blob) // 2
    # Taking a step makes room; the inflater goes on by itself.
    before = reader.consumed
    assert pump.take() is not None
    wait_idle(pump)
    assert reader.consumed > before


def test_input_beyond_the_queue_limit_is_not_asked_for(monkeypatch):
    monkeypatch.setattr(pump_module, "AHEAD", 256 << 10)
    monkeypatch.setattr(pump_module, "INPUT", 1 << 20)
    _, blob = layer()
    pump = InflatePump(LayerReader(step_output=STEP))
    given = 0
    for batch in batches(blob):
        if not pump.wants_input:
            break
        pump.give(batch)
        given += len(batch)
    # What the inflater took meanwhile is bounded by AHEAD (and one step) of output.
    assert pump_module.INPUT <= given < pump_module.INPUT + BATCH + (1 << 20)


def test_damage_ends_the_steps_with_the_error():
    raw, _ = layer()
    first = gzip.compress(raw[: len(raw) // 2])
    damaged = first + b"not a gzip member" + gzip.compress(raw[len(raw) // 2 :])
    reader = LayerReader(step_output=STEP)
    pump = InflatePump(reader)
    for batch in batches(damaged):
        pump.give(batch)
    steps = []
    while (step := pump.take()) is not None:
        steps.append(step)
    assert isinstance(steps[-1].error, CorruptLayer)
    assert all(step.error is None for step in steps[:-1])
    assert steps[-1].consumed <= len(first) + BATCH
    wait_idle(pump)
    # Nothing after the damage, though the rest of the blob is queued.
    assert pump.take() is None
    assert reader.consumed <= len(first) + BATCH


def test_an_error_of_the_scan_is_raised_by_take():
    _, blob = layer()
    reader = LayerReader(step_output=STEP)
    pump = InflatePump(reader)
    pump.give(blob[:BATCH])
    first = pump.take()
    assert first is not None
    # A tar stream that goes wrong: the reader keeps the failure, the next inflate raises it.
    bad = first.pieces[0][:512].replace(b"data/", b"DATA/", 1)
    reader.scan(Inflated([bad], first.consumed, None))
    assert reader.failure is not None
    pump.give(blob[BATCH : 2 * BATCH])
    with pytest.raises(CorruptLayer):
        while pump.take() is not None:
            pass


def test_close_stops_the_inflater_and_drops_what_waits():
    _, blob = layer()
    reader = LayerReader(step_output=STEP)
    pump = InflatePump(reader)
    for batch in batches(blob):
        pump.give(batch)
    pump.close()
    wait_idle(pump)
    assert pump.take() is None
    assert not pump.wants_input
    consumed = reader.consumed
    pump.give(blob[:BATCH])  # a late batch after close is ignored
    wait_idle(pump)
    assert reader.consumed == consumed


def test_the_switch_interval_is_short_while_a_front_end_runs_and_restored_after():
    before, thresholds = sys.getswitchinterval(), gc.get_threshold()
    InflatePump(LayerReader())
    assert sys.getswitchinterval() == before  # a pump alone leaves the interpreter as it was
    with tuned_process():
        assert sys.getswitchinterval() <= pump_module.SWITCH_INTERVAL
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] >= YOUNG_THRESHOLD > thresholds[0]
        assert gc.get_threshold()[1:] == thresholds[1:]
    assert sys.getswitchinterval() == before
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds


SHARED_HEAP_SOURCE = """
import threading
from layerpeek.core.runtime import tuned_process

def rss_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

pins, done = [], threading.Event()

def churn(churned):
    big = bytearray(4 << 20)
    del big  # a large block freed: glibc raises its threshold, the 1 MiB blocks use heaps
    held = []
    for _ in range(32):  # 1 MiB blocks, each followed by one that stays
        held.append(bytearray(1 << 20))
        pins.append(bytearray(100 << 10))
    del held
    churned.set()
    done.wait()

with tuned_process():
    before, threads = rss_kib(), []
    for _ in range(4):  # one after the other, each alive (holding its heap) until the end
        churned = threading.Event()
        threads.append(threading.Thread(target=churn, args=(churned,)))
        threads[-1].start()
        churned.wait()
    grown = rss_kib() - before
    done.set()
    for thread in threads:
        thread.join()
print(grown >> 10)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")
def test_space_one_thread_freed_is_reused_by_the_next_while_a_front_end_runs():
    """A scan frees megabyte blocks on several threads: what one frees must serve the next
    blocks of another, not stay in a heap of its own, counted in the process's RSS."""
    done = subprocess.run(
        [sys.executable, "-c", SHARED_HEAP_SOURCE], capture_output=True, text=True, check=True
    )
    assert int(done.stdout) < 80  # MiB: 4 x 32 MiB freed, 12.5 MiB kept


def test_no_batch_is_left_behind_when_input_arrives_as_the_inflater_stops():
    """Batches given while the inflater's job is running out of work are inflated all the
    same: once every batch is given, ``take`` says None only after all of them."""
    raw, blob = layer(files=60)
    pieces = [blob[i : i + 4096] for i in range(0, len(blob), 4096)]
    for _ in range(30):
        reader = LayerReader(step_output=STEP)
        pump = InflatePump(reader)
        giver = threading.Thread(target=give_all, args=(pump, pieces))
        giver.start()
        steps = []
        while giver.is_alive():
            if (step := pump.take()) is not None:
                steps.append(step)
        giver.join()
        while (step := pump.take()) is not None:
            steps.append(step)
        assert b"".join(piece for step in steps for piece in step.pieces) == raw
