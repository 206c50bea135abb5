import numpy as np
import pytest

from redline.pipeline.arbiter.checks import AnswerCheck


@pytest.fixture
def check():
    return AnswerCheck(n_out=3, low=-1.0, high=1.0, rtol=1e-3, atol=1e-4)


def test_one_validity_rule_for_a_single_answer_and_a_batch(check):
    outs = np.array(
        [
            [0.1, -0.2, 0.3],  # fine
            [0.1, np.nan, 0.3],  # NaN anywhere
            [np.inf, 0.0, 0.0],  # inf
            [0.1, 1.5, 0.0],  # above the range
            [-1.0, 1.0, 0.0],  # on the bounds: fine
        ],
        np.float32,
    )
    batch = check.valid(outs).tolist()
    assert batch == [True, False, False, False, True]
    assert [check.valid_one(o) for o in outs] == batch
    assert not check.valid_one(np.zeros(2, np.float32))  # a wrong number of outputs


def test_one_agreement_rule_for_a_single_answer_and_a_batch(check):
    ref = np.array([[0.5, 0.0, -0.5]] * 4, np.float32)
    a = ref.copy()
    a[1, 0] += 0.5 * 1e-3 + 1e-4 - 1e-6  # just inside atol + rtol * |ref|
    a[2, 0] += 0.5 * 1e-3 + 1e-4 + 1e-5  # just outside
    a[3, 1] = np.nan  # NaN never agrees
    batch = check.agree(a, ref).tolist()
    assert batch == [True, True, False, False]
    assert [check.agree_one(x, r) for x, r in zip(a, ref, strict=True)] == batch
