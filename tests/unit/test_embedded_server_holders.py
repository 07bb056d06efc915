"""pgserver's list of the processes holding the embedded server survives an interrupted write."""

from pathlib import Path

import pytest
from pgserver.utils import DiskList

from lending_pipelines.db.server import forget_dead_holders, patch_pgserver


def test_a_ctrl_c_during_a_holder_list_write_leaves_the_previous_list_whole(tmp_path, monkeypatch):
    patch_pgserver()
    holders = DiskList(tmp_path / ".handle_pids.json")
    holders.put([101, 202])
    real_write_text = Path.write_text

    def interrupted_write(path, text, *args, **kwargs):
        real_write_text(path, "", *args, **kwargs)  # opened for writing (truncated), then:
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        holders.get_and_remove(202)
    monkeypatch.undo()

    assert holders.get() == [101, 202]
    assert forget_dead_holders(tmp_path) == [], "dead holders are still pruned afterwards"
    assert holders.get() == []
