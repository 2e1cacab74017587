"""Beat as a singleton: with two beat processes one sends, the other takes over if it dies."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dashcache.config import Settings
from dashcache.worker.schedule import beat_lock_seconds, beat_loop_seconds
from tests.processes import beat_process

SENT = "Sending due task warm-every-scope"


def test_second_beat_stands_by_and_takes_over_after_leader_killed(
    settings: Settings, tmp_path: Path
) -> None:
    """While the leader lives the standby sends nothing; after a SIGKILL the standby leads."""
    fast = replace(settings, refresh_seconds=1, ttl_seconds=60)
    with beat_process(fast, tmp_path / "a") as leader:
        leader.wait_for("beat.leading")
        with beat_process(fast, tmp_path / "b") as standby:
            sent_before = len(leader.lines_with(SENT, 1))
            leader.lines_with(SENT, sent_before + 3)
            assert not [line for line in standby.lines if SENT in line]
            assert not [line for line in standby.lines if "beat.leading" in line]
            leader.popen.kill()
            leader.popen.wait()
            takeover = beat_lock_seconds(fast) + beat_loop_seconds(fast)
            standby.wait_for("beat.leading", timeout=takeover + 60)
            standby.wait_for(SENT)
