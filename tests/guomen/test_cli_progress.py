"""The CLI's rendering of the progress protocol (features.progress.Progress)."""

from guomen.cli import _progress_lines, _ProgressBar


def _state(bar: _ProgressBar) -> list[tuple[str, float, float | None]]:
    return [(t.description, t.completed, t.total) for t in bar._bar.tasks]


def test_named_steps_advance_one_bar_and_finish_fills_it():
    with _ProgressBar(3) as bar:
        bar("read store")
        assert _state(bar) == [("read store", 0, 3)]
        bar("build features")
        bar("train")
        assert _state(bar) == [("train", 2, 3)]
        bar.finish()
    assert _state(bar) == [("done", 3, 3)]


def test_counted_stages_keep_their_bars_and_each_stage_gets_its_own():
    with _ProgressBar() as bar:
        bar("features", 0, 4)
        bar("features", 4, 4)
        bar("score", 1, 4)
        bar("score", 4, 4)
        bar("publish", 0, 1)
    assert _state(bar) == [("features", 4, 4), ("score", 4, 4), ("publish", 0, 1)]


def test_counted_steps_of_one_piece_of_work_share_a_bar():
    with _ProgressBar() as bar:
        bar("checking declarations", 0, 3)
        bar("checking inspections", 1, 3)
        bar("committed", 3, 3)
    assert _state(bar) == [("committed", 3, 3)]


def test_progress_lines_print_the_step_and_its_count(capsys):
    say = _progress_lines("features: ")
    say("partition 2026-01..2026-03")
    say("score", 2, 5)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("s] features: partition 2026-01..2026-03")
    assert lines[1].endswith("s] features: score (2/5)")
