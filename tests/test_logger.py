"""Tests of compilerdream/logger.py: terminal line, metrics.jsonl, TensorBoard events."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest

from compilerdream.compiler.progress import progress_bar
from compilerdream.logger import JSONLOutput, Logger, TensorBoardOutput, TerminalOutput, config_markdown


def test_jsonl_and_terminal(tmp_path: Path) -> None:
    step = {"value": 10}
    stream = io.StringIO()
    logger = Logger(tmp_path, lambda: step["value"], outputs=[TerminalOutput(stream), JSONLOutput(tmp_path)])
    logger.scalar("model_loss", 1.0)
    logger.scalar("model_loss", np.float32(3.0))  # repeated names are averaged
    logger.add({"reduction": 1.5, "length": 45}, prefix="test")
    logger.write()
    step["value"] = 20
    logger.scalar("fps_free", 2)
    logger.write()
    logger.write()  # nothing pending: no line
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"step": 10, "model_loss": 2.0, "test/reduction": 1.5, "test/length": 45.0},
        {"step": 20, "fps_free": 2.0},
    ]
    assert stream.getvalue().splitlines() == [
        "[10] model_loss 2 / test/reduction 1.5 / test/length 45",
        "[20] fps_free 2",
    ]


def test_fps_and_bad_values(tmp_path: Path) -> None:
    step = {"value": 0}
    logger = Logger(tmp_path, lambda: step["value"], outputs=[JSONLOutput(tmp_path)])
    logger.write(fps=True)  # first call only starts the clock
    step["value"] = 100
    logger.write(fps=True)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["step"] == 100 and records[0]["fps"] > 0
    with pytest.raises(TypeError, match="needs a number"):
        logger.scalar("x", "abc")
    assert Logger(tmp_path, 7, outputs=[]).step == 7


def test_tensorboard_scalars_and_config(tmp_path: Path) -> None:
    pytest.importorskip("torch.utils.tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    output = TensorBoardOutput(tmp_path)
    logger = Logger(tmp_path, lambda: 5, outputs=[output])
    logger.config({"seed": 0, "model_opt.lr": 1e-4})
    logger.config({"seed": 1})  # written once only
    logger.add({"model_loss": 0.5}, prefix="losses")
    logger.scalar("return", 2.0)
    logger.write()
    logger.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    tags = events.Tags()
    assert set(tags["scalars"]) == {"losses/model_loss", "scalars/return"}
    assert events.Scalars("losses/model_loss")[0].step == 5
    assert len(events.Tensors("config/text_summary")) == 1


def test_config_markdown() -> None:
    assert config_markdown({"a": 1, "b.c": "x"}) == "|param|value|\n|-|-|\n|a|1|\n|b.c|x|"


def test_progress_bar_into_a_log_redraws_rarely():
    """Into a file (not a terminal), 1,000 updates over half a second make a couple of redraws, not hundreds."""
    stream = io.StringIO()
    bar = progress_bar(total=1000, desc="train", file=stream)
    for i in range(1000):
        time.sleep(0.0005)  # a terminal's 0.1 s interval would redraw at least 5 times
        bar.update(1)
        bar.set_postfix(step=i, refresh=False)
    bar.close()
    assert 1 <= stream.getvalue().count("\r") <= 3 and "1000/1000" in stream.getvalue()
