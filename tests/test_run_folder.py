"""The run folder's files: a result file that does not parse is an error naming it."""

from __future__ import annotations

import pytest

from minivlm.run_folder import RunFolder


@pytest.mark.parametrize("content", [b'{"steps": "1\x01"}', b'{"steps": 1', b"\xff\xfe\x00garbage"])
def test_a_corrupt_result_file_is_a_value_error_naming_it(tmp_path, content):
    folder = RunFolder(tmp_path)
    folder.final_eval.write_bytes(content)
    with pytest.raises(ValueError, match=rf"{folder.final_eval} is not valid JSON .*delete it"):
        folder.load_final_eval()
