"""The evaluator reuses memory (workspace.py) without letting one tensor overwrite another."""

import numpy as np
import pytest

from benchmarks.coreml_reference import workspace as W
from model_zoo import mil_program


def _relu_of_a_view(mb, x):
    a = mb.add(x=x, y=-1.0)
    b = mb.reshape(x=a, shape=[1, 2, 2])  # a view of a's memory, read by nothing but the relu
    c = mb.relu(x=b)
    return mb.add(x=a, y=mb.reshape(x=c, shape=[1, 4]))


def _add_of_itself(mb, x):
    a = mb.mul(x=x, y=2.0)
    return mb.add(x=a, y=a)  # a dies here, read twice: neither read may be overwritten


def _add_then_reuse(mb, x):
    a = mb.add(x=x, y=1.0)
    b = mb.mul(x=a, y=3.0)  # a's last reader: b may take a's memory
    c = mb.sub(x=b, y=x)
    return mb.real_div(x=c, y=mb.add(x=b, y=10.0))


@pytest.mark.parametrize("build,expected", [
    (_relu_of_a_view, lambda x: (x - 1) + np.maximum(x - 1, 0)),
    (_add_of_itself, lambda x: 4 * x),
    (_add_then_reuse, lambda x: (3 * (x + 1) - x) / (3 * (x + 1) + 10)),
])
def test_reused_memory_never_changes_a_live_tensor(tmp_path, build, expected):
    """The first case failed before the workspace: relu overwrote its input, a view of `a`, so the
    last add saw relu(a) twice ([0, 0, 1, 4] instead of [-3, -1.5, 1, 4])."""
    x = np.array([[-2, -0.5, 1.5, 3]], np.float32)
    runner = mil_program(tmp_path, build, (1, 4))
    want = expected(x.astype(np.float64))
    for _ in range(2):  # the second call runs on the first one's kept memory
        np.testing.assert_allclose(runner.predict_batch([x])[0], want, rtol=1e-6)
        np.testing.assert_allclose(runner.predict_batch([np.concatenate([x, -x])])[0],
                                   np.concatenate([want, expected(-x.astype(np.float64))]), rtol=1e-6)


def test_only_unshared_arrays_are_kept_or_overwritten():
    import weakref

    f32 = np.dtype(np.float32)
    ws = W.Workspace()
    env = {"viewed": np.ones(3, f32), "shared": np.ones(4, f32), "alone": np.ones(5, f32)}
    env["other name"] = env["shared"]
    view = env["viewed"][1:]
    # (computed before the asserts: pytest's assertion rewriting holds on to what an assert evaluates)
    found = [W.sole(env["viewed"], 1), W.sole(env["shared"], 1), W.sole(env["alone"], 1), W.sole(view, 1)]
    assert found == [False, False, True, False]  # a view never owns its memory
    ws.keep(env.pop("viewed"))  # the view still reads it
    ws.keep(env.pop("shared"))  # "other name" still holds it
    held = env["alone"]
    ws.keep(env.pop("alone"))  # `held` still refers to it
    assert ws.empty((3,), f32) is not view.base and ws.empty((5,), f32) is not held
    last = weakref.ref(env["other name"])
    ws.keep(env.pop("other name"))  # the last reference: kept, and handed out for the same shape
    again, fresh = ws.empty((4,), f32), ws.empty((4,), f32)
    assert again is last() and fresh is not again  # handed out once only


def test_scratch_is_reused_per_thread_and_plain_without_a_workspace():
    with W.using(W.Workspace()):
        a = W.scratch("t", (2, 3))
        b = W.scratch("t", (3, 2))
        assert np.shares_memory(a, b)
        assert not np.shares_memory(W.scratch("u", (2, 3)), a)
    assert not np.shares_memory(W.scratch("t", (2, 3)), W.scratch("t", (2, 3)))
