"""The run's logs: TensorBoard events written in the training thread, and write failures that
surface as one RunWriteError instead of a blocked queue."""

import errno
import struct
import tracemalloc

import pytest
from tensorboardX.proto.event_pb2 import Event

from deepq.run.files import RunWriteError
from deepq.run.logs import PROGRESS_COLUMNS, RunLogger, TensorBoardScalars, read_progress


def read_events(directory):
    """Every Event in the directory's event files (TFRecord: length, crc, data, crc)."""
    events = []
    for path in sorted(directory.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            payload = data[offset + 12 : offset + 12 + length]
            events.append(Event.FromString(payload))
            offset += 12 + length + 4
    return events


def scalars(events):
    return [(e.step, v.tag, v.simple_value) for e in events for v in e.summary.value]


def test_scalars_are_written_and_read_back(tmp_path):
    writer = TensorBoardScalars(tmp_path / "tb")
    writer.add("train/loss", 0.5, 10)
    writer.add("eval/mean_return", 200.0, 20)
    writer.close()
    assert scalars(read_events(tmp_path / "tb")) == [
        (10, "train/loss", 0.5),
        (20, "eval/mean_return", 200.0),
    ]


def test_a_resumed_log_starts_with_tensorboards_purge_marker(tmp_path):
    writer = TensorBoardScalars(tmp_path / "tb", purge_step=1234)
    writer.close()
    (marker,) = [e for e in read_events(tmp_path / "tb") if e.HasField("session_log")]
    assert marker.step == 1234 and marker.session_log.status == marker.session_log.START


def test_a_failed_event_write_is_one_run_write_error_and_close_stays_quiet(tmp_path, monkeypatch):
    logger = RunLogger(tmp_path, total_steps=None, show_progress=False)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(logger._tb, "add", disk_full)
    row = {"episode": 1, "env_steps": 10, "return": 1.0, "length": 10, "mean_100": 1.0,
           "epsilon": 1.0, "wall_s": 0.1}  # fmt: skip
    with pytest.raises(RunWriteError, match=r"cannot write .*tb: No space left on device"):
        logger.episode(row, steps_per_s=100.0)
    logger.close()  # the failure was reported once; closing does not raise it again


def test_progress_is_read_and_cut_one_line_at_a_time(tmp_path):
    """A 210 MB progress.csv took 5.4 GB to resume and 5.7 GB to plot, read whole: here 100,000
    episodes (6 MB) are checked, counted and cut to a checkpoint's 1,000 in a few hundred KB."""
    row = "{0},{1},-12.5,20,-10.25,0.5,{0}.5\n"
    rows = "".join(row.format(i, 20 * i) for i in range(1, 100_001))
    (tmp_path / "progress.csv").write_text(",".join(PROGRESS_COLUMNS) + "\n" + rows)
    tracemalloc.start()
    count = sum(1 for _ in read_progress(tmp_path))
    RunLogger(
        tmp_path, None, show_progress=False, tensorboard=False, resume_at=(1000, 20_000)
    ).close()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 100_000 and peak < 2 << 20
    lines = (tmp_path / "progress.csv").read_text().splitlines()
    assert len(lines) == 1001 and lines[-1] == row.format(1000, 20_000).strip()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress.csv"]  # no temporary left
