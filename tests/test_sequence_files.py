"""The plain ``user item`` sequence reader (recsys_utils.data.sequence_files): validation line by line."""

import numpy as np
import pandas as pd
import pytest

from recsys_utils.data.sequence_files import SequenceFileError, read_sequence_file, write_sequence_file


def _write(tmp_path, text, name="seq.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_pairs_in_file_order_and_counts_short_users(tmp_path):
    path = _write(tmp_path, "1 10\n1 11\n\n2 10\n1 12\n2\t13\n3 10\n1 10\n")
    read = read_sequence_file(path)
    assert read.frame["user_id"].tolist() == [1, 1, 2, 1, 2, 3, 1]
    assert read.frame["item_id"].tolist() == [10, 11, 10, 12, 13, 10, 10]
    assert read.frame["timestamp"].is_monotonic_increasing  # time = line order, repeats kept
    assert read.notes == {"lines": 7, "users": 3, "items": 4, "users_with_fewer_than_3_items": 2}
    assert read.short_users().tolist() == [2, 3]


@pytest.mark.parametrize("text, line, words", [
    ("1 2\n1 2 3\n", 2, "expected 2 fields"),
    ("1 2\n\n1\n", 3, "expected 2 fields"),
    ("1 2\nuser item\n", 2, "must be integers"),
    ("1 2.5\n", 1, "must be integers"),
    ("1 2\n-1 4\n", 2, "non-negative"),
])
def test_malformed_lines_name_the_file_and_line(tmp_path, text, line, words):
    path = _write(tmp_path, text)
    with pytest.raises(SequenceFileError, match=rf"seq\.txt:{line}: .*{words}"):
        read_sequence_file(path)


def test_empty_missing_and_folder_inputs(tmp_path):
    with pytest.raises(SequenceFileError, match="no 'user item' line"):
        read_sequence_file(_write(tmp_path, "\n\n"))
    with pytest.raises(SequenceFileError, match="not found"):
        read_sequence_file(tmp_path / "nope.txt")
    with pytest.raises(SequenceFileError, match="is a folder"):
        read_sequence_file(tmp_path)


def test_write_then_read_round_trip(tmp_path):
    frame = pd.DataFrame({"user_id": [2, 1, 1, 2], "item_id": [5, 7, 6, 4],
                          "timestamp": pd.to_datetime([3, 2, 1, 4], unit="s")})
    read = read_sequence_file(write_sequence_file(frame, tmp_path / "out.txt"))
    assert list(zip(read.frame["user_id"], read.frame["item_id"], strict=True)) == [(1, 6), (1, 7), (2, 5), (2, 4)]
    with pytest.raises(ValueError, match="non-negative integers"):
        write_sequence_file(frame.assign(user_id=np.array(["a", "b", "c", "d"])), tmp_path / "bad.txt")
