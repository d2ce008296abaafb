"""The shared rules: compiled and Python forms agree, on scalars and arrays, with the definitions they state."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched_gym.core import rules
from llmsched_gym.core.table import FLOAT_COLUMNS, INT_COLUMNS, FloatCol, IntCol, RequestTable

sizes = st.integers(0, 5000)
block_sizes = st.integers(1, 64)


@settings(deadline=None)  # the first example loads the compiled rules
@given(p=st.integers(1, 5000), g=sizes, c=sizes, held=st.integers(0, 400), bs=block_sizes, x=st.integers(1, 600))
def test_rules_state_their_definitions_in_compiled_and_python_forms(p, g, c, held, bs, x):
    names = ("pending", "is_decode", "blocks_for", "decode_blocks", "admission_blocks", "new_blocks")
    for compiled in (True, False):
        r = {name: getattr(rules, name) if compiled else getattr(rules, name).py_func for name in names}
        assert r["pending"](p, g, c) == p + g - c
        assert r["is_decode"](p, g, c) == (p + g - c == 1 and g >= 1)
        assert r["blocks_for"](c, bs) == math.ceil(c / bs)
        assert r["decode_blocks"](c, held, bs) == max(math.ceil((c + 1) / bs) - held, 0)
        assert r["admission_blocks"](p, g, held, bs) == max(math.ceil((p + g) / bs) - held, 0)
        for reserve in (False, True):
            after = max(math.ceil((c + 3 * x) / bs), math.ceil((p + g) / bs) if reserve else 0)
            assert r["new_blocks"](c, x, 3, p, g, held, bs, reserve) == max(after - held, 0)


def test_arithmetic_rules_are_elementwise_on_arrays():
    c, held = np.array([0, 15, 16, 17]), np.array([0, 1, 1, 0])
    np.testing.assert_array_equal(rules.decode_blocks.py_func(c, held, 16), [1, 0, 1, 2])
    np.testing.assert_array_equal(rules.admission_blocks.py_func(c, c, held, 16), [0, 1, 1, 3])
    np.testing.assert_array_equal(rules.is_decode.py_func(c, np.array([1, 1, 2, 0]), c), [True, True, False, False])


def test_arrival_fit_names_the_reason_a_request_can_never_run():
    assert rules.arrival_fit(16, 1, 16, 10, 5)[0] == rules.FITS
    assert rules.arrival_fit(16, 150, 16, 10, 5) == (rules.NEVER_FITS, 11, 1)
    assert rules.arrival_fit(96, 1, 16, 10, 5) == (rules.PROMPT_ABOVE_WATERMARK, 6, 6)


def test_named_table_rows_index_the_columns_they_name():
    assert [c.name.lower() for c in IntCol] == list(INT_COLUMNS)
    assert [c.name.lower() for c in FloatCol] == list(FLOAT_COLUMNS)
    table = RequestTable(16)
    assert np.shares_memory(table.ints[IntCol.PROMPT], table.prompt)
    assert np.shares_memory(table.floats[FloatCol.ARRIVAL], table.arrival)
