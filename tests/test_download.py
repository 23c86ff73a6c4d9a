"""Safe downloads: checksums, atomic writes, safe zip extraction, trust on first use (no network)."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import urllib.request
import zipfile

import pytest

from recsys_utils.core.io import atomic_write
from recsys_utils.data.download import (
    BadArchiveError,
    ChecksumError,
    DownloadError,
    UnsafeArchiveError,
    check_trusted,
    download,
    file_hashes,
    record_trust,
    safe_extract,
    trust_on_first_use,
    verify_file,
    zip_members,
)

PAYLOAD = b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n" * 1000


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_file_hashes_match_hashlib(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(PAYLOAD)
    found = file_hashes(path)
    assert found == {"size": len(PAYLOAD), "md5": hashlib.md5(PAYLOAD).hexdigest(),
                     "sha256": hashlib.sha256(PAYLOAD).hexdigest()}
    verify_file(path, md5=found["md5"].upper(), size=len(PAYLOAD))
    with pytest.raises(ChecksumError, match="f.bin: size"):
        verify_file(path, size=1)


def test_download_file_url_verified_and_atomic(tmp_path):
    src = tmp_path / "src.zip"
    src.write_bytes(PAYLOAD)
    dest = tmp_path / "out" / "data.zip"
    got = download(src.as_uri(), dest, md5=hashlib.md5(PAYLOAD).hexdigest(),
                   sha256=hashlib.sha256(PAYLOAD).hexdigest(), size=len(PAYLOAD), progress=False)
    assert got == dest and dest.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == []
    # present and matching: nothing is fetched (the URL no longer exists)
    src.unlink()
    assert download(src.as_uri(), dest, md5=hashlib.md5(PAYLOAD).hexdigest(), progress=False) == dest


def test_download_checksum_mismatch_leaves_nothing(tmp_path):
    src = tmp_path / "src.zip"
    src.write_bytes(PAYLOAD)
    dest = tmp_path / "out" / "data.zip"
    with pytest.raises(ChecksumError, match="md5"):
        download(src.as_uri(), dest, md5="0" * 32, progress=False)
    assert not dest.exists() and _leftovers(dest.parent) == []


def test_interrupted_download_never_looks_complete(tmp_path, monkeypatch):
    class Broken(io.BytesIO):
        headers = {"Content-Length": str(len(PAYLOAD))}

        def read(self, n=-1):
            if self.tell() > 1000:
                raise ConnectionResetError("connection lost")
            return super().read(min(n, 600))

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Broken(PAYLOAD))
    dest = tmp_path / "data.zip"
    with pytest.raises(DownloadError, match=r"cannot download https://example\.invalid/data\.zip: connection lost"):
        download("https://example.invalid/data.zip", dest, progress=False)
    assert not dest.exists() and _leftovers(tmp_path) == []


def test_download_rejects_other_schemes(tmp_path):
    with pytest.raises(ValueError, match="unsupported URL scheme"):
        download("ftp://example.invalid/x.zip", tmp_path / "x.zip")


def _zip(path, members: dict[str, bytes], link: str | None = None):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        if link is not None:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


def test_safe_extract_extracts_ordinary_archive(tmp_path):
    archive = _zip(tmp_path / "a.zip", {"ml-100k/u.data": PAYLOAD, "ml-100k/README": b"hi", "ml-100k/": b""})
    target = safe_extract(archive, tmp_path / "out")
    assert (target / "ml-100k" / "u.data").read_bytes() == PAYLOAD
    assert sorted(zip_members(archive)) == ["ml-100k/README", "ml-100k/u.data"]
    with pytest.raises(FileExistsError):
        safe_extract(archive, tmp_path / "out")


@pytest.mark.parametrize("members, link, message", [
    ({"../evil.txt": b"x"}, None, r"climbs out"),
    ({"ok/../../evil.txt": b"x"}, None, r"climbs out"),
    ({"/etc/evil.txt": b"x"}, None, r"absolute path"),
    ({"C:/evil.txt": b"x"}, None, r"absolute path"),
    ({"ok.txt": b"x"}, "ml-100k/link", r"link or device"),
])
def test_safe_extract_refuses_path_escapes(tmp_path, members, link, message):
    archive = _zip(tmp_path / "bad.zip", {"fine.txt": b"fine", **members}, link=link)
    with pytest.raises(UnsafeArchiveError, match=message):
        safe_extract(archive, tmp_path / "out")
    # nothing at all was written: not the target, not the good member, no temporary folder
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()
    assert _leftovers(tmp_path) == []


def test_safe_extract_size_and_member_limits(tmp_path):
    archive = _zip(tmp_path / "big.zip", {"a.txt": b"0" * 10_000, "b.txt": b"1" * 10})
    with pytest.raises(UnsafeArchiveError, match="exceeds the limit"):
        safe_extract(archive, tmp_path / "out", max_bytes=5_000)
    with pytest.raises(UnsafeArchiveError, match="members exceeds"):
        safe_extract(archive, tmp_path / "out", max_members=1)
    assert not (tmp_path / "out").exists()


def test_safe_extract_not_a_zip(tmp_path):
    path = tmp_path / "x.zip"
    path.write_text("not a zip")
    with pytest.raises(ValueError, match="x.zip: not a valid zip"):
        safe_extract(path, tmp_path / "out")


def test_trust_on_first_use(tmp_path):
    path, record = tmp_path / "online+retail.zip", tmp_path / "meta" / "online+retail.json"
    path.write_bytes(PAYLOAD)
    first = trust_on_first_use(path, record, source="https://example.invalid")
    assert json.loads(record.read_text())["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert trust_on_first_use(path, record)["sha256"] == first["sha256"]
    path.write_bytes(PAYLOAD[:-1])  # truncated copy
    with pytest.raises(ChecksumError, match="size"):
        trust_on_first_use(path, record)


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    path = tmp_path / "cache.csv"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(path, "w") as handle:
        handle.write("half")
        raise RuntimeError("crash")
    assert path.read_text() == "old" and _leftovers(tmp_path) == []
    with atomic_write(path, "w") as handle:
        handle.write("new")
    assert path.read_text() == "new"


def _deflated(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_safe_extract_refuses_a_zip_bomb_before_writing(tmp_path):
    archive = _deflated(tmp_path / "bomb.zip", {"a.csv": b"0" * (8 << 20)})  # 8 MiB in ~8 KB: ratio ~1000
    with pytest.raises(UnsafeArchiveError, match=r"'a\.csv' would decompress [\d,]+ times .*zip bomb"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []
    # a small member may compress as well as it likes; so may a big one under a generous limit
    assert (safe_extract(_deflated(tmp_path / "s.zip", {"z": b"0" * 100_000}), tmp_path / "s") / "z").is_file()
    assert safe_extract(archive, tmp_path / "big", max_ratio=2000).joinpath("a.csv").stat().st_size == 8 << 20


def test_safe_extract_selected_members_and_corrupt_data(tmp_path):
    archive = _deflated(tmp_path / "a.zip", {"keep.txt": PAYLOAD, "skip.txt": b"x"})
    out = safe_extract(archive, tmp_path / "one", members=["keep.txt"])
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"] and (out / "keep.txt").read_bytes() == PAYLOAD
    with pytest.raises(KeyError, match="no member"):
        safe_extract(archive, tmp_path / "two", members=["nope.txt"])
    data = bytearray(archive.read_bytes())
    start = data.index(b"keep.txt") + len("keep.txt") + 10  # inside the first member's compressed bytes
    data[start:start + 40] = bytes(40)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(bytes(data))
    with pytest.raises(BadArchiveError, match=r"broken\.zip: not a valid zip archive: member 'keep\.txt'"):
        safe_extract(broken, tmp_path / "three")
    assert not (tmp_path / "three").exists()


def test_download_failure_names_the_url(tmp_path):
    url = (tmp_path / "missing.zip").as_uri()
    with pytest.raises(DownloadError, match=f"cannot download {url}"):
        download(url, tmp_path / "out.zip", progress=False)
    assert not (tmp_path / "out.zip").exists() and _leftovers(tmp_path) == []


def test_trust_is_recorded_only_when_asked(tmp_path):
    path, record = tmp_path / "f.zip", tmp_path / "f.json"
    path.write_bytes(PAYLOAD)
    assert check_trusted(path, record) is None and not record.exists()
    record_trust(path, record, source="https://example.invalid")
    assert check_trusted(path, record)["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    path.write_bytes(PAYLOAD + b"x")
    with pytest.raises(ChecksumError, match="size"):
        check_trusted(path, record)
