"""Lost Kafka offsets from a checkpoint's own offset log (pure parts)."""
from __future__ import annotations

from tickcast import data_loss


def _checkpoint(tmp_path):
    (tmp_path / "offsets").mkdir()
    (tmp_path / "sources" / "0").mkdir(parents=True)
    # Spark's own layouts: the initial offsets file starts with a NUL byte; offset files carry metadata.
    (tmp_path / "sources" / "0" / "0").write_bytes(b'\x00v1\n{"ticks":{"0":0,"1":5}}')
    (tmp_path / "offsets" / "0").write_text('v1\n{"batchWatermarkMs":0,"conf":{}}\n{"ticks":{"0":100,"1":105}}')
    (tmp_path / "offsets" / "1").write_text('v1\n{"batchWatermarkMs":0,"conf":{}}\n{"ticks":{"0":250,"1":105}}')
    return str(tmp_path)


def test_planned_ranges_come_from_the_checkpoint_and_losses_are_planned_minus_read(tmp_path):
    cp = _checkpoint(tmp_path)
    assert data_loss.planned_ranges(cp, 0) == {("ticks", 0): (0, 100), ("ticks", 1): (5, 105)}
    assert data_loss.planned_ranges(cp, 1) == {("ticks", 0): (100, 250), ("ticks", 1): (105, 105)}
    assert data_loss.planned_ranges(cp, 2) is None                     # not planned yet
    assert data_loss.planned_ranges("s3a://bucket/cp", 1) is None      # not local: cannot tell
    planned = data_loss.planned_ranges(cp, 1)
    assert data_loss.losses(planned, {("ticks", 0): 150}) == {}
    assert data_loss.losses(planned, {("ticks", 0): 30}) == {("ticks", 0): 120}
    assert data_loss.losses(planned, {}) == {("ticks", 0): 150}        # every record of the range gone
    assert data_loss.describe({}) == "lost 0"
    assert data_loss.describe({("ticks", 1): 3, ("ticks", 0): 120}) == "LOST 123 offsets (ticks/0: 120, ticks/1: 3)"
