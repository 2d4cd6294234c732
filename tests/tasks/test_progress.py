"""The TProgress rules of API.md, event by event, including the replays a reconnect produces."""

from __future__ import annotations

from typing import Any

from agent.comfy.messages import (
    ExecutionFailed,
    ExecutionSucceeded,
    NodeExecuted,
    NodeExecuting,
    NodesCached,
    ProgressReported,
)
from agent.tasks.progress import ProgressTracker, files_in

PID = "p"
PROMPT: dict[str, Any] = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 8, "height": 8, "batch_size": 1}},
    "3": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "latent_image": ["5", 0], "steps": 3}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}},
    "10": {"class_type": "SaveImage", "inputs": {"images": ["5", 0]}},
}
IMAGE = {"filename": "a_00001_.png", "subfolder": "", "type": "output"}


def tracker() -> ProgressTracker:
    return ProgressTracker(PROMPT, clock=lambda: 1_800_000_000.7)


def states(tracked: ProgressTracker) -> dict[str, tuple[int, int]]:
    return {node: (state.max, state.value) for node, state in tracked.nodes.items()}


def test_every_node_starts_at_zero_and_nothing_else_is_in_the_map() -> None:
    tracked = tracker()
    assert set(tracked.nodes) == set(PROMPT)
    assert all(state == (0, 0) for state in states(tracked).values())
    assert "" not in tracked.nodes


def test_running_node_is_one_of_zero_then_finished_when_the_next_starts() -> None:
    tracked = tracker()
    assert tracked.apply(NodeExecuting(PID, "4", "4"))
    assert states(tracked)["4"] == (1, 0)
    assert tracked.nodes["4"].start == 1_800_000_000
    tracked.apply(NodeExecuting(PID, "5", "5"))
    assert states(tracked)["4"] == (1, 1)
    assert states(tracked)["5"] == (1, 0)


def test_sampler_progress_sets_max_and_value_and_finishes_at_max() -> None:
    tracked = tracker()
    tracked.apply(NodeExecuting(PID, "3", "3"))
    tracked.apply(ProgressReported(PID, "3", 2, 3))
    assert states(tracked)["3"] == (3, 2)
    tracked.apply(NodeExecuting(PID, "8", "8"))
    assert states(tracked)["3"] == (3, 3)


def test_cached_nodes_are_finished_and_cached_outputs_keep_their_images() -> None:
    tracked = tracker()
    tracked.apply(NodesCached(PID, ("4", "5", "10")))
    tracked.apply(NodeExecuted(PID, "10", "10", {"images": [IMAGE]}))
    assert states(tracked)["4"] == states(tracked)["10"] == (1, 1)
    assert [image.filename for image in tracked.nodes["10"].images] == ["a_00001_.png"]


def test_same_event_twice_changes_nothing_the_second_time() -> None:
    tracked = tracker()
    executed = NodeExecuted(PID, "9", "9", {"images": [IMAGE]})
    assert tracked.apply(executed)
    assert not tracked.apply(executed)
    assert len(tracked.nodes["9"].images) == 1


def test_finished_node_never_goes_back_to_running() -> None:
    tracked = tracker()
    tracked.apply(NodeExecuted(PID, "9", "9", {"images": [IMAGE]}))
    tracked.apply(NodeExecuting(None, "9"))  # the hint a reconnecting socket gets
    assert states(tracked)["9"] == (1, 1)
    assert not tracked.apply(ProgressReported(PID, "9", 0, 5))


def test_success_from_history_finishes_the_nodes_behind_the_outputs_that_ran() -> None:
    tracked = tracker()
    tracked.apply(NodeExecuting(PID, "4", "4"))
    tracked.apply(ExecutionSucceeded(PID, ("9",)))
    assert states(tracked) == {"4": (1, 1), "5": (1, 1), "3": (1, 1), "8": (1, 1), "9": (1, 1), "10": (0, 0)}


def test_error_finishes_what_ran_and_leaves_the_failing_node_running() -> None:
    tracked = tracker()
    tracked.apply(NodeExecuting(PID, "3", "3"))
    tracked.apply(ExecutionFailed(PID, {"node_id": "3", "executed": ["4", "5"]}))
    assert states(tracked)["4"] == states(tracked)["5"] == (1, 1)
    assert states(tracked)["3"] == (1, 0)


def test_expanded_nodes_report_on_their_display_node_and_unknown_nodes_are_ignored() -> None:
    tracked = tracker()
    assert tracked.apply(NodeExecuted(PID, "9.0.1", "9", {"images": [IMAGE]}))
    assert tracked.apply(NodeExecuted(PID, "9.0.2", "9", {"images": [{**IMAGE, "filename": "b.png"}]}))
    assert [image.filename for image in tracked.nodes["9"].images] == ["a_00001_.png", "b.png"]
    assert not tracked.apply(NodeExecuting(PID, "77", None))
    assert "77" not in tracked.nodes
    assert tracked.reported["9.0.1"] == {"images": [IMAGE]}


def test_images_of_odd_shape_are_left_out_of_the_map_but_kept_in_outputs() -> None:
    tracked = tracker()
    tracked.apply(NodeExecuted(PID, "9", "9", {"images": ["not-a-dict", IMAGE], "gifs": [{"filename": "x.mp4"}]}))
    assert [image.filename for image in tracked.nodes["9"].images] == ["a_00001_.png"]
    assert tracked.reported["9"]["gifs"] == [{"filename": "x.mp4"}]


def test_files_outside_images_show_in_files_and_gain_their_url_once_stored() -> None:
    tracked = tracker()
    audio = {"filename": "s_00001_.flac", "subfolder": "audio", "type": "output"}
    tracked.apply(NodeExecuted(PID, "9", "9", {"images": [IMAGE], "audio": [audio, {"subfolder": "no name"}],
                                               "text": ["hi"]}))
    assert [file.filename for file in tracked.nodes["9"].files] == ["s_00001_.flac"]
    assert "files" not in tracked.nodes["10"].model_dump()  # the seed's shape where a node has none
    stored = {"url": "https://bucket/k", "key": "k", "content_type": "audio/flac", "bytes": 9}
    place = ("output", "audio", "s_00001_.flac")
    [ref] = [file for file in files_in(tracked.reported["9"]) if file.filename == "s_00001_.flac"]
    tracked.stored({place: ref.model_copy(update=stored)})
    assert tracked.nodes["9"].files[0].model_dump() == {**audio, **stored}
    assert tracked.reported["9"]["audio"][0] == {**audio, **stored}
    assert tracked.nodes["9"].images[0].url is None  # not stored: left as it was


def test_a_snapshot_never_changes_and_costs_a_copy_of_only_what_changed() -> None:
    tracked = tracker()
    tracked.apply(NodeExecuting(PID, "3", "3"))
    first = tracked.snapshot()
    before = {node: state.model_dump() for node, state in first.items()}
    tracked.apply(ProgressReported(PID, "3", 1, 3))
    tracked.apply(ProgressReported(PID, "3", 2, 3))
    second = tracked.snapshot()
    tracked.apply(NodeExecuting(PID, "8", "8"))
    tracked.apply(NodeExecuted(PID, "9", "9", {"images": [IMAGE]}))
    tracked.stored({})
    assert {node: state.model_dump() for node, state in first.items()} == before
    assert (second["3"].max, second["3"].value) == (3, 2) and not second["9"].images
    assert states(tracked)["3"] == (3, 3) and tracked.nodes["9"].images
    assert second["4"] is first["4"]  # a node nothing changed is shared, not copied
