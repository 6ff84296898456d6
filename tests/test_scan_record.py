"""A folder's decode check is remembered for unchanged files and redone when a file changes."""

import logging
import os

import zoo
import zoo.data.scan_record as scan_record


def _counting_scans(monkeypatch):
    calls = []
    real = scan_record.scan_images

    def counted(paths, *args, **kwargs):
        calls.append(len(paths))
        return real(paths, *args, **kwargs)

    monkeypatch.setattr(scan_record, "scan_images", counted)
    return calls


def test_second_run_reuses_the_scan_and_still_names_bad_files(class_folders, monkeypatch, caplog):
    broken = class_folders / "000_red" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(300))  # a JPEG header, then noise
    calls = _counting_scans(monkeypatch)
    first = zoo.create_dataset(str(class_folders))
    assert sum(calls) == 31  # every file of both splits (zoo's 80/20 split of a folder without train/val)
    with caplog.at_level(logging.WARNING, logger="zoo.data"):
        second = zoo.create_dataset(str(class_folders))
    assert sum(calls) == 31  # the second run decoded nothing: it read the records
    assert [path for path, _ in second.skipped] == [path for path, _ in first.skipped] == [str(broken)]
    assert second.skipped[0][1] == first.skipped[0][1]  # the same reason
    assert f"skipping {broken}" in caplog.text
    assert len(second.train) + len(second.eval) == len(first.train) + len(first.eval) == 30


def test_a_changed_file_is_scanned_again(class_folders, monkeypatch):
    calls = _counting_scans(monkeypatch)
    zoo.create_dataset(str(class_folders))
    photo = class_folders / "001_green" / "3.png"
    photo.write_bytes(b"not an image any more")
    scanned_before = len(calls)
    changed = zoo.create_dataset(str(class_folders))
    assert len(calls) == scanned_before + 1  # the split holding the changed file, not the other
    assert [path for path, _ in changed.skipped] == [str(photo)]
